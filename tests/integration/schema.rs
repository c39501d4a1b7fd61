//! `docs/gantry.schema.json`, the JSON Schema editors use for
//! `gantry.toml`, kept true: every config this project shows validates
//! against it, a wrong key or type does not, and every key it names is one
//! Gantry reads.

use serde_json::Value;

use crate::harness::examples;

fn schema() -> Value {
    let path = examples().join("../docs/gantry.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The part of JSON Schema the file uses; returns where `value` breaks it.
fn check(schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let fits = options.iter().filter(|o| {
            let mut e = Vec::new();
            check(o, value, at, &mut e);
            e.is_empty()
        });
        if fits.count() != 1 {
            errors.push(format!("{at}: fits not exactly one of the choices"));
        }
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            errors.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    let kind = schema.get("type").and_then(Value::as_str);
    let fits = match (kind, value) {
        (None, _) => true,
        (Some("object"), Value::Object(_)) | (Some("array"), Value::Array(_)) => true,
        (Some("string"), Value::String(_)) | (Some("boolean"), Value::Bool(_)) => true,
        (Some("integer"), Value::Number(n)) => n.is_i64(),
        _ => false,
    };
    if !fits {
        errors.push(format!("{at}: {value} is not of type {kind:?}"));
        return;
    }
    if let (Some(min), Some(n)) = (
        schema.get("minimum").and_then(Value::as_i64),
        value.as_i64(),
    ) {
        if n < min {
            errors.push(format!("{at}: {n} < {min}"));
        }
    }
    if let (Some(max), Some(n)) = (
        schema.get("maximum").and_then(Value::as_i64),
        value.as_i64(),
    ) {
        if n > max {
            errors.push(format!("{at}: {n} > {max}"));
        }
    }
    if let Value::Array(items) = value {
        if let Some(item) = schema.get("items") {
            for (i, v) in items.iter().enumerate() {
                check(item, v, &format!("{at}[{i}]"), errors);
            }
        }
    }
    if let Value::Object(map) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let required = required.as_str().unwrap();
            if !map.contains_key(required) {
                errors.push(format!("{at}: `{required}` is missing"));
            }
        }
        for (key, v) in map {
            let path = format!("{at}.{key}");
            match (
                properties.and_then(|p| p.get(key)),
                schema.get("additionalProperties"),
            ) {
                (Some(s), _) => check(s, v, &path, errors),
                (None, Some(Value::Bool(false))) => errors.push(format!("{path}: not a known key")),
                (None, Some(s)) if s.is_object() => check(s, v, &path, errors),
                (None, _) => {}
            }
        }
    }
}

fn errors_of(toml_text: &str) -> Vec<String> {
    let value: toml::Value = toml::from_str(toml_text).unwrap();
    let json = serde_json::to_value(value).unwrap();
    let mut errors = Vec::new();
    check(&schema(), &json, "gantry.toml", &mut errors);
    errors
}

/// Every property name the schema lists, at any depth.
fn names(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                out.extend(props.keys().cloned());
            }
            map.values().for_each(|v| names(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| names(v, out)),
        _ => {}
    }
}

#[test]
fn the_schema_accepts_every_config_we_show_and_refuses_wrong_ones() {
    let readme = std::fs::read_to_string(examples().join("../docs/config.md")).unwrap();
    let full = readme
        .split("A full example")
        .nth(1)
        .and_then(|rest| rest.split("```toml\n").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("docs/config.md's full example");
    for (name, text) in [
        (
            "examples/gantry.example.toml",
            std::fs::read_to_string(examples().join("gantry.example.toml")).unwrap(),
        ),
        (
            "examples/app/gantry.toml",
            std::fs::read_to_string(examples().join("app/gantry.toml")).unwrap(),
        ),
        ("docs/config.md's full example", full.to_string()),
    ] {
        assert_eq!(errors_of(&text), Vec::<String>::new(), "{name}");
    }
    let base = "[deploy]\npath = \"/srv/app\"\n\n[environments.staging]\nhosts = [\"local\"]\n";
    assert!(errors_of(base).is_empty());
    assert_eq!(
        errors_of(&base.replace("path =", "bulid = []\npath =")),
        ["gantry.toml.deploy.bulid: not a known key"]
    );
    assert_eq!(
        errors_of(&base.replace("[deploy]", "[deploy]\nkeep_releases = 1")),
        ["gantry.toml.deploy.keep_releases: 1 < 2"]
    );
    assert_eq!(
        errors_of("[deploy]\n"),
        [
            "gantry.toml: `environments` is missing",
            "gantry.toml.deploy: `path` is missing"
        ]
    );
}

#[test]
fn every_key_in_the_schema_is_one_gantry_reads() {
    let raw = std::fs::read_to_string(examples().join("../src/config/raw.rs")).unwrap();
    let mut all = Vec::new();
    names(&schema(), &mut all);
    all.sort();
    all.dedup();
    assert!(all.len() > 40, "{all:?}");
    for name in all {
        assert!(
            raw.contains(&format!("pub {name}:")),
            "`{name}` is in the schema but not in src/config/raw.rs"
        );
    }
}

#[test]
fn gantry_schema_prints_the_published_schema() {
    let t = crate::harness::Test::new().start();
    let run = t.gantry(&["schema"]);
    run.success();
    let printed: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(printed, schema());
}
