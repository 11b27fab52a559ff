//! JSON Schema (draft 2020-12) of runbooks: ASL (JSONPath, and the JSONata state fields) plus the runbook additions, for
//! editor validation (`runbook schema`). The engine's own checks are stricter (graph, paths,
//! intrinsics); the schema catches typos and shapes as you type.

use serde_json::{Value, json};

/// The schema as a JSON value.
pub fn json_schema() -> Value {
    let path = json!({"type": "string", "pattern": "^\\$"});
    // A JSONata field may hold its literal type or a `{% %}` expression giving it; which
    // query language a state uses is inherited from the top level, which a schema cannot see,
    // so both forms are accepted and the engine refuses the wrong one with file:line:col.
    let or_expr = |v: Value| json!({"anyOf": [v, {"$ref": "#/$defs/jsonata"}]});
    // JSONata-only state fields (the engine refuses them in JSONPath states).
    let output = json!({"description": "JSONata only: the state's output, any JSON value; strings \"{% ... %}\" (also inside objects and arrays) are evaluated."});
    let arguments = json!({
        "description": "JSONata only: the task's or branches' input, an object (values may be {% %} expressions) or one expression.",
        "anyOf": [{"type": "object"}, {"$ref": "#/$defs/jsonata"}],
    });
    let nullable_path = json!({"type": ["string", "null"], "pattern": "^\\$"});
    let common = |extra: Value| -> Value {
        let mut props = json!({
            "Type": {"type": "string"},
            "Comment": {"type": "string"},
            "QueryLanguage": {"enum": ["JSONPath", "JSONata"]},
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
        "Output": output.clone(),
    });
    let seconds = or_expr(json!({"type": "integer", "minimum": 1, "maximum": 99999999}));
    let ops: Vec<&str> = crate::model::Op::ALL.iter().map(|(n, _)| *n).collect();
    let mut rule_props = json!({
        "Variable": {"$ref": "#/$defs/path"},
        "Next": {"type": "string"},
        "Comment": {"type": "string"},
        "And": {"type": "array", "items": {"$ref": "#/$defs/choiceRule"}, "minItems": 1},
        "Or": {"type": "array", "items": {"$ref": "#/$defs/choiceRule"}, "minItems": 1},
        "Not": {"$ref": "#/$defs/choiceRule"},
        "Assign": {"$ref": "#/$defs/assign"},
        "Condition": {"$ref": "#/$defs/jsonata"},
        "Output": output.clone(),
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
        "description": "A runbook: an Amazon States Language state machine (JSONPath or JSONata) with runbook additions (Runbook block; Task Sha256 and Capabilities).",
        "$ref": "#/$defs/topLevel",
        "$defs": {
            "path": path,
            "jsonata": {
                "type": "string",
                "pattern": "^\\{%[\\s\\S]*%\\}$",
                "description": "A JSONata expression (QueryLanguage: JSONata): {% ... %} over $states.input, $states.result (Task, Parallel, Map Output/Assign), $states.errorOutput (Catch Output/Assign), $states.context and workflow variables.",
            },
            "nullablePath": nullable_path,
            "payload": {"type": "object", "description": "Keys ending in .$ take a path or an intrinsic function."},
            "assign": {
                "type": "object",
                "description": "Workflow variables set when the state succeeds, read as $name from the next state on. In JSONPath states, keys ending in .$ take a path or an intrinsic function; in JSONata states, values may be {% %} expressions. 'states' is reserved.",
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
            "pass": state("Pass", merge(&io_t, json!({"Result": {}, "ResultPath": {"$ref": "#/$defs/nullablePath"}, "Parameters": {"$ref": "#/$defs/payload"}, "Assign": {"$ref": "#/$defs/assign"}, "Output": output.clone()})), json!(["Type"])),
            "task": state("Task", merge(&merge(&io_t, result.clone()), json!({
                "Resource": {"type": "string", "description": "plugin:<name>, a path to a .wasm file, or an ARN"},
                "Sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
                "Capabilities": {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z0-9_-]+:[A-Za-z0-9*_-]+( on .+)?$"}},
                "TimeoutSeconds": seconds.clone(), "TimeoutSecondsPath": {"$ref": "#/$defs/path"},
                "HeartbeatSeconds": seconds, "HeartbeatSecondsPath": {"$ref": "#/$defs/path"},
                "Credentials": {},
                "Arguments": arguments.clone(),
            })), json!(["Type", "Resource"])),
            "choice": state("Choice", merge(&io, json!({
                "Choices": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/choiceRule"}},
                "Default": {"type": "string"},
                "Assign": {"$ref": "#/$defs/assign"},
                "Output": output.clone(),
            })), json!(["Type", "Choices"])),
            "choiceRule": {"type": "object", "properties": rule_props, "additionalProperties": false},
            "wait": state("Wait", merge(&io_t, json!({
                "Seconds": or_expr(json!({"type": "integer", "minimum": 0, "maximum": 99999999})),
                // An RFC 3339 timestamp, or an expression giving one (no `format`: it would
                // be read as a date-time annotation on the expression too).
                "Timestamp": {"type": "string", "description": "An RFC 3339 timestamp, or (JSONata) a {% %} expression giving one."},
                "SecondsPath": {"$ref": "#/$defs/path"}, "TimestampPath": {"$ref": "#/$defs/path"},
                "Assign": {"$ref": "#/$defs/assign"},
                "Output": output.clone(),
            })), json!(["Type"])),
            "succeed": state("Succeed", merge(&io, json!({"Output": output.clone()})), json!(["Type"])),
            // In JSONata states Error and Cause may be {% %} expressions giving strings.
            "fail": state("Fail", json!({"Error": {"type": "string"}, "Cause": {"type": "string"}, "ErrorPath": {"type": "string"}, "CausePath": {"type": "string"}}), json!(["Type"])),
            "parallel": state("Parallel", merge(&merge(&io_t, result.clone()), json!({
                "Branches": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/machine"}},
                "Arguments": arguments.clone(),
            })), json!(["Type", "Branches"])),
            "map": state("Map", merge(&merge(&io_t, result), json!({
                "ItemsPath": {"$ref": "#/$defs/path"},
                "Items": or_expr(json!({"type": "array"})),
                "ItemSelector": {"$ref": "#/$defs/payload"},
                "ItemProcessor": {"$ref": "#/$defs/machine"},
                "Iterator": {"$ref": "#/$defs/machine"},
                "MaxConcurrency": or_expr(json!({"type": "integer", "minimum": 0})), "MaxConcurrencyPath": {"$ref": "#/$defs/path"},
                "ToleratedFailurePercentage": or_expr(json!({"type": "number", "minimum": 0, "maximum": 100})),
                "ToleratedFailurePercentagePath": {"$ref": "#/$defs/path"},
                "ToleratedFailureCount": or_expr(json!({"type": "integer", "minimum": 0})), "ToleratedFailureCountPath": {"$ref": "#/$defs/path"},
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
                    "Output": {"description": "JSONata only: the catcher's output (default $states.errorOutput); {% %} expressions read $states.errorOutput ({Error, Cause}) and $states.input."},
                },
                "required": ["ErrorEquals", "Next"],
                "additionalProperties": false,
            },
        },
    })
}
