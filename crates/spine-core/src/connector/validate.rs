//! A validator for the subset of JSON Schema 2020-12 the connector schemas use (decision 0021):
//! `type`, `properties`, `required`, `additionalProperties` (false or a schema), `enum`, `const`,
//! `minLength`, `maxLength`, `format: uri` (an absolute http(s) URL) and `oneOf`. Annotations
//! (`title`, `description`, `default`, `writeOnly`, `$schema`, `$id`) are ignored. Any other
//! keyword is refused by [`unsupported_keywords`], which a unit test runs over every shipped
//! schema, so a schema can never silently rely on something this validator skips.
//!
//! Errors name the field by its dotted path (`auth.token: required`), never its value.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

/// One field's problem: `field` is the dotted path (`config` for the whole document).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

const ANNOTATIONS: [&str; 6] = ["$schema", "$id", "title", "description", "default", "writeOnly"];
const SUPPORTED: [&str; 10] = [
    "type",
    "properties",
    "required",
    "additionalProperties",
    "enum",
    "const",
    "minLength",
    "maxLength",
    "format",
    "oneOf",
];

/// Keywords in `schema` (recursively) this validator does not implement, as `path: keyword`.
pub fn unsupported_keywords(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_keywords(schema, "#", &mut out);
    out
}

fn walk_keywords(schema: &Value, at: &str, out: &mut Vec<String>) {
    let Some(obj) = schema.as_object() else {
        if !schema.is_boolean() {
            out.push(format!("{at}: not a schema"));
        }
        return;
    };
    for (k, v) in obj {
        if ANNOTATIONS.contains(&k.as_str()) {
            continue;
        }
        if !SUPPORTED.contains(&k.as_str()) {
            out.push(format!("{at}: {k}"));
            continue;
        }
        match k.as_str() {
            "properties" => {
                for (name, sub) in v.as_object().into_iter().flatten() {
                    walk_keywords(sub, &format!("{at}/properties/{name}"), out);
                }
            }
            "additionalProperties" => walk_keywords(v, &format!("{at}/additionalProperties"), out),
            "oneOf" => {
                for (i, sub) in v.as_array().into_iter().flatten().enumerate() {
                    walk_keywords(sub, &format!("{at}/oneOf/{i}"), out);
                }
            }
            "format" if v != "uri" => out.push(format!("{at}: format {v}")),
            _ => {}
        }
    }
}

/// Validates `value` against `schema`; every problem found, in document order.
pub fn validate(schema: &Value, value: &Value) -> Vec<FieldError> {
    let mut out = Vec::new();
    check(schema, value, "", &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

fn push(out: &mut Vec<FieldError>, path: &str, message: impl Into<String>) {
    let field = if path.is_empty() { "config".to_owned() } else { path.to_owned() };
    out.push(FieldError { field, message: message.into() });
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "string" => v.is_string(),
        "integer" => v.as_i64().is_some() || v.as_u64().is_some(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "null" => v.is_null(),
        _ => false,
    }
}

fn article(ty: &str) -> &'static str {
    if ty.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" }
}

/// An absolute `http://` or `https://` URL with a host and no whitespace or control characters.
pub fn is_http_url(s: &str) -> bool {
    let rest = match s.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") => rest,
        _ => return false,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let host_only = if host.starts_with('[') { host } else { host.split(':').next().unwrap_or("") };
    !host_only.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn check(schema: &Value, v: &Value, path: &str, out: &mut Vec<FieldError>) {
    let Some(s) = schema.as_object() else {
        if schema == &Value::Bool(false) {
            push(out, path, "unknown field");
        }
        return;
    };
    if let Some(branches) = s.get("oneOf").and_then(Value::as_array) {
        one_of(branches, v, path, out);
    }
    if let Some(ty) = s.get("type").and_then(Value::as_str)
        && !type_matches(ty, v)
    {
        push(out, path, format!("must be {} {ty}", article(ty)));
        return;
    }
    if let Some(c) = s.get("const")
        && c != v
    {
        push(out, path, format!("must be {c}"));
    }
    if let Some(options) = s.get("enum").and_then(Value::as_array)
        && !options.contains(v)
    {
        let names: Vec<String> =
            options.iter().map(|o| o.as_str().map_or_else(|| o.to_string(), str::to_owned)).collect();
        push(out, path, format!("must be one of {}", names.join(", ")));
    }
    if let Some(text) = v.as_str() {
        let len = text.chars().count();
        if let Some(min) = s.get("minLength").and_then(Value::as_u64)
            && (len as u64) < min
        {
            push(
                out,
                path,
                if min == 1 { "must not be empty".to_owned() } else { format!("must be at least {min} characters") },
            );
        }
        if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
            && (len as u64) > max
        {
            push(out, path, format!("must be at most {max} characters"));
        }
        if s.get("format").and_then(Value::as_str) == Some("uri") && !text.is_empty() && !is_http_url(text) {
            push(out, path, "must be an http(s) URL");
        }
    }
    if let Some(obj) = v.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        for name in s.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if !obj.contains_key(name) {
                push(out, &join(path, name), "required");
            }
        }
        for (k, fv) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(sub) => check(sub, fv, &join(path, k), out),
                None => {
                    if let Some(extra) = s.get("additionalProperties") {
                        check(extra, fv, &join(path, k), out);
                    }
                }
            }
        }
    }
}

/// The value of a branch's `properties.type.const`, when the branch is discriminated that way.
fn discriminator(branch: &Value) -> Option<&str> {
    branch.pointer("/properties/type/const").and_then(Value::as_str)
}

/// `oneOf`: exactly one branch must match. When every branch is tagged by `type` (as auth
/// variants are), the errors are the chosen branch's own, or a list of the known variants.
fn one_of(branches: &[Value], v: &Value, path: &str, out: &mut Vec<FieldError>) {
    let tags: Option<Vec<&str>> = branches.iter().map(discriminator).collect();
    if let Some(tags) = tags {
        if !v.is_object() {
            push(out, path, "must be an object");
            return;
        }
        let tag_path = join(path, "type");
        match v.get("type") {
            None => push(out, &tag_path, format!("required (one of {})", tags.join(", "))),
            Some(t) => match tags.iter().position(|tag| Some(*tag) == t.as_str()) {
                Some(i) => check(&branches[i], v, path, out),
                None => push(out, &tag_path, format!("must be one of {}", tags.join(", "))),
            },
        }
        return;
    }
    let matching = branches.iter().filter(|b| validate(b, v).is_empty()).count();
    if matching != 1 {
        push(out, path, format!("must match exactly one of {} alternatives ({matching} match)", branches.len()));
    }
}
