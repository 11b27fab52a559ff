//! Capability calls as the wasm host makes them: the resource a grant is checked
//! against is read from the arguments at the catalogue's path.

use runbook_caps::CapCall;
use serde_json::Value;

/// `service:action` with `args`, in `region`; panics when the action is not in the
/// catalogue (a typo in a test).
pub fn call(service: &str, action: &str, region: Option<&str>, args: Value) -> CapCall {
    let spec = runbook_caps::action_by_iam(service, action)
        .unwrap_or_else(|| panic!("{service}:{action} is not in the catalogue"));
    let resource = spec.resource.and_then(|path| {
        let mut v = &args;
        for part in path.split('.') {
            v = v.get(part)?;
        }
        v.as_str().map(str::to_string)
    });
    CapCall {
        service: service.into(),
        action: action.into(),
        region: region.map(str::to_string),
        resource,
        args,
    }
}
