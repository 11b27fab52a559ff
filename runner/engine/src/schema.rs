//! JSON Schema (draft 2020-12) of runbooks: ASL (JSONPath, and the JSONata state fields) plus the runbook additions, for
//! editor validation (`runbook schema`). The engine's own checks are stricter (graph, paths,
//! intrinsics); the schema catches typos and shapes as you type.

use serde_json::{Value, json};

/// The schema as a JSON value.
pub fn json_schema() -> Value {
    let path = json!({"type": "string", "pattern": "^\\$"});
    let nullable_path = json!({"type": ["string", "null"], "pattern": "^\\$"});
    let common = |extra: Value| -> Value {
        let mut props = json!({
            "Type": {"type": "string"},
            "Comment": {"type": "string"},
            "QueryLanguage": {"enum": ["JSONPath", "JSONata"]},
            // JSONata states (the engine checks which state types take them).
            "Arguments": {},
            "Output": {},
        });
        for (k, v) in extra.as_object().unwrap() {
            props[k] = v.clone();
        }
        props
    };
    let state = |ty: &str, props: Value, required: Value| -> Value {
        let mut p = common(props);
        p["Type"] = json!({"const": ty});
        json!({
            "type": "object",
            "properties": p,
            "required": required,
            "additionalProperties": false,
        })
    };
    let io = json!({"InputPath": {"$ref": "#/$defs/nullablePath"}, "OutputPath": {"$ref": "#/$defs/nullablePath"}});
    let merge = |a: &Value, b: Value| -> Value {
        let mut m = a.clone();
        for (k, v) in b.as_object().unwrap() {
            m[k] = v.clone();
        }
        m
    };
    let trans = json!({"Next": {"type": "string"}, "End": {"type": "boolean"}});
    let io_t = merge(&io, trans);
    let result = json!({
        "Parameters": {"$ref": "#/$defs/payload"},
        "ResultSelector": {"$ref": "#/$defs/payload"},
        "ResultPath": {"$ref": "#/$defs/nullablePath"},
        "Retry": {"type": "array", "items": {"$ref": "#/$defs/retrier"}},
        "Catch": {"type": "array", "items": {"$ref": "#/$defs/catcher"}},
        "Assign": {"$ref": "#/$defs/assign"},
    });
    let seconds = json!({"type": "integer", "minimum": 1, "maximum": 99999999});
    let ops: Vec<&str> = crate::model::Op::ALL.iter().map(|(n, _)| *n).collect();
    let mut rule_props = json!({
        "Variable": {"$ref": "#/$defs/path"},
        "Next": {"type": "string"},
        "Comment": {"type": "string"},
        "And": {"type": "array", "items": {"$ref": "#/$defs/choiceRule"}, "minItems": 1},
        "Or": {"type": "array", "items": {"$ref": "#/$defs/choiceRule"}, "minItems": 1},
        "Not": {"$ref": "#/$defs/choiceRule"},
        "Assign": {"$ref": "#/$defs/assign"},
        "Condition": {"type": "string"},
        "Output": {},
    });
    for (name, op) in crate::model::Op::ALL {
        let ty = if name.starts_with("String") || name.starts_with("Timestamp") {
            json!({"type": "string"})
        } else if name.starts_with("Numeric") {
            json!({"type": "number"})
        } else {
            json!({"type": "boolean"})
        };
        rule_props[name] = ty;
        if op.has_path_variant() {
            rule_props[format!("{name}Path")] = json!({"$ref": "#/$defs/path"});
        }
    }
    let _ = ops;
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://runbook.dev/schema/runbook.json",
        "title": "runbook",
        "description": "A runbook: an Amazon States Language state machine (JSONPath) with runbook additions (Runbook block; Task Sha256 and Capabilities).",
        "$ref": "#/$defs/topLevel",
        "$defs": {
            "path": path,
            "nullablePath": nullable_path,
            "payload": {"type": "object", "description": "Keys ending in .$ take a path or an intrinsic function."},
            "assign": {
                "type": "object",
                "description": "Workflow variables set when the state succeeds, read as $name from the next state on. Keys ending in .$ take a path or an intrinsic function; 'states' is reserved.",
                "propertyNames": {"not": {"enum": ["states", "states.$"]}},
            },
            "topLevel": {
                "type": "object",
                "properties": {
                    "Comment": {"type": "string"},
                    "StartAt": {"type": "string"},
                    "States": {"$ref": "#/$defs/states"},
                    "TimeoutSeconds": {"type": "integer", "minimum": 1},
                    "Version": {"type": "string"},
                    "QueryLanguage": {"enum": ["JSONPath", "JSONata"]},
                    "Runbook": {"$ref": "#/$defs/runbook"},
                },
                "required": ["StartAt", "States"],
                "additionalProperties": false,
            },
            "runbook": {
                "type": "object",
                "properties": {
                    "Name": {"type": "string"},
                    "Description": {"type": "string"},
                    "Provider": {"enum": ["local", "aws"]},
                    "Environment": {
                        "type": "string",
                        "description": "The environment this runbook acts on (a name or a path such as $.EnvironmentSuffix): one execution tree per provider/environment at a time."
                    },
                    "Parameters": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "properties": {
                                "Type": {"enum": ["string", "number", "integer", "boolean", "object", "array"]},
                                "Default": {},
                                "Description": {"type": "string"},
                            },
                            "required": ["Type"],
                            "additionalProperties": false,
                        },
                    },
                },
                "additionalProperties": false,
            },
            "machine": {
                "type": "object",
                "properties": {
                    "Comment": {"type": "string"},
                    "StartAt": {"type": "string"},
                    "States": {"$ref": "#/$defs/states"},
                    "ProcessorConfig": {
                        "type": "object",
                        "properties": {"Mode": {"enum": ["INLINE", "DISTRIBUTED"]}, "ExecutionType": {"enum": ["STANDARD", "EXPRESS"]}},
                        "additionalProperties": false,
                    },
                },
                "required": ["StartAt", "States"],
                "additionalProperties": false,
            },
            "states": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"maxLength": 80},
                "additionalProperties": {"$ref": "#/$defs/state"},
            },
            "state": {
                "type": "object",
                "required": ["Type"],
                "oneOf": [
                    {"$ref": "#/$defs/pass"}, {"$ref": "#/$defs/task"}, {"$ref": "#/$defs/choice"},
                    {"$ref": "#/$defs/wait"}, {"$ref": "#/$defs/succeed"}, {"$ref": "#/$defs/fail"},
                    {"$ref": "#/$defs/parallel"}, {"$ref": "#/$defs/map"},
                ],
            },
            "pass": state("Pass", merge(&io_t, json!({"Result": {}, "ResultPath": {"$ref": "#/$defs/nullablePath"}, "Parameters": {"$ref": "#/$defs/payload"}, "Assign": {"$ref": "#/$defs/assign"}})), json!(["Type"])),
            "task": state("Task", merge(&merge(&io_t, result.clone()), json!({
                "Resource": {"type": "string", "description": "plugin:<name>, a path to a .wasm file, or an ARN"},
                "Sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
                "Capabilities": {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z0-9_-]+:[A-Za-z0-9*_-]+( on .+)?$"}},
                "TimeoutSeconds": seconds.clone(), "TimeoutSecondsPath": {"$ref": "#/$defs/path"},
                "HeartbeatSeconds": seconds, "HeartbeatSecondsPath": {"$ref": "#/$defs/path"},
                "Credentials": {},
            })), json!(["Type", "Resource"])),
            "choice": state("Choice", merge(&io, json!({
                "Choices": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/choiceRule"}},
                "Default": {"type": "string"},
                "Assign": {"$ref": "#/$defs/assign"},
            })), json!(["Type", "Choices"])),
            "choiceRule": {"type": "object", "properties": rule_props, "additionalProperties": false},
            "wait": state("Wait", merge(&io_t, json!({
                "Seconds": {"type": "integer", "minimum": 0}, "Timestamp": {"type": "string", "format": "date-time"},
                "SecondsPath": {"$ref": "#/$defs/path"}, "TimestampPath": {"$ref": "#/$defs/path"},
                "Assign": {"$ref": "#/$defs/assign"},
            })), json!(["Type"])),
            "succeed": state("Succeed", io.clone(), json!(["Type"])),
            "fail": state("Fail", json!({"Error": {"type": "string"}, "Cause": {"type": "string"}, "ErrorPath": {"type": "string"}, "CausePath": {"type": "string"}}), json!(["Type"])),
            "parallel": state("Parallel", merge(&merge(&io_t, result.clone()), json!({
                "Branches": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/machine"}},
            })), json!(["Type", "Branches"])),
            "map": state("Map", merge(&merge(&io_t, result), json!({
                "ItemsPath": {"$ref": "#/$defs/path"},
                "ItemSelector": {"$ref": "#/$defs/payload"},
                "ItemProcessor": {"$ref": "#/$defs/machine"},
                "Iterator": {"$ref": "#/$defs/machine"},
                "MaxConcurrency": {"type": "integer", "minimum": 0}, "MaxConcurrencyPath": {"$ref": "#/$defs/path"},
                "ToleratedFailurePercentage": {"type": "number", "minimum": 0, "maximum": 100},
                "ToleratedFailurePercentagePath": {"$ref": "#/$defs/path"},
                "ToleratedFailureCount": {"type": "integer", "minimum": 0}, "ToleratedFailureCountPath": {"$ref": "#/$defs/path"},
                "Label": {"type": "string"},
            })), json!(["Type"])),
            "retrier": {
                "type": "object",
                "properties": {
                    "ErrorEquals": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                    "IntervalSeconds": {"type": "integer", "minimum": 1},
                    "MaxAttempts": {"type": "integer", "minimum": 0},
                    "BackoffRate": {"type": "number", "minimum": 1},
                    "MaxDelaySeconds": {"type": "integer", "minimum": 1},
                    "JitterStrategy": {"enum": ["FULL", "NONE"]},
                    "Comment": {"type": "string"},
                },
                "required": ["ErrorEquals"],
                "additionalProperties": false,
            },
            "catcher": {
                "type": "object",
                "properties": {
                    "ErrorEquals": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                    "Next": {"type": "string"},
                    "ResultPath": {"$ref": "#/$defs/nullablePath"},
                    "Comment": {"type": "string"},
                    "Assign": {"$ref": "#/$defs/assign"},
                },
                "required": ["ErrorEquals", "Next"],
                "additionalProperties": false,
            },
        },
    })
}
