//! What a component imports and exports, for `runbook plugin inspect` and grant checks.

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::{ComponentExtern, ComponentItem};

/// Imports and exports of a component, each with the functions inside.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Inspection {
    pub sha256: String,
    pub size: usize,
    pub imports: Vec<Item>,
    pub exports: Vec<Item>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Item {
    pub name: String,
    /// `instance`, `func`, `type`, ...
    pub kind: &'static str,
    pub functions: Vec<String>,
}

pub(crate) fn component_imports(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .map(|(n, _)| n.to_string())
        .collect()
}

/// Imports through which the component can call something: an instance imported only
/// for its types (a `use postgres.{target}` in another interface) calls nothing.
pub(crate) fn callable_imports(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .filter(|(_, item)| match &item.ty {
            ComponentItem::ComponentInstance(inst) => inst
                .exports(engine)
                .any(|(_, i)| matches!(i.ty, ComponentItem::ComponentFunc(_))),
            _ => true,
        })
        .map(|(n, _)| n.to_string())
        .collect()
}

fn items<'a>(
    engine: &Engine,
    it: impl Iterator<Item = (&'a str, ComponentExtern<'a>)>,
) -> Vec<Item> {
    it.map(|(name, ext)| {
        let (kind, functions) = match &ext.ty {
            ComponentItem::ComponentInstance(inst) => (
                "instance",
                inst.exports(engine)
                    .filter(|(_, i)| matches!(i.ty, ComponentItem::ComponentFunc(_)))
                    .map(|(n, _)| n.to_string())
                    .collect(),
            ),
            ComponentItem::ComponentFunc(_) => ("func", vec![]),
            ComponentItem::Type(_) => ("type", vec![]),
            ComponentItem::Resource(_) => ("resource", vec![]),
            ComponentItem::Module(_) => ("module", vec![]),
            ComponentItem::Component(_) => ("component", vec![]),
            ComponentItem::CoreFunc(_) => ("core-func", vec![]),
        };
        Item {
            name: name.to_string(),
            kind,
            functions,
        }
    })
    .collect()
}

/// Inspect component bytes without a `Host` (a plain engine, nothing linked).
pub fn inspect_bytes(bytes: &[u8]) -> wasmtime::Result<Inspection> {
    use sha2::{Digest, Sha256};
    let engine = Engine::default();
    let component = Component::new(&engine, bytes)?;
    let ty = component.component_type();
    Ok(Inspection {
        sha256: hex::encode(Sha256::digest(bytes)),
        size: bytes.len(),
        imports: items(&engine, ty.imports(&engine)),
        exports: items(&engine, ty.exports(&engine)),
    })
}
