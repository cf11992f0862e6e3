//! Checks a located YAML tree against the manifest's JSON Schema, collecting every problem.
//!
//! serde stops at the first error; users fixing a manifest want all of them at once. So the
//! document is first walked here against the schema generated from [`super::Manifest`], which
//! reports unknown fields (with a "did you mean"), wrong types, missing fields and bad enum
//! values, each at its line and column. Only a document with no problem is deserialised.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value as Json;

use super::node::{Node, Position, Value};
use crate::manifest::diagnostic::{Diagnostic, Location, SourceFile};

/// Where each value of a document stands, by JSON pointer (`/projects/abc/bitbucket`).
#[derive(Debug, Default, Clone)]
pub struct Locations {
    map: HashMap<String, Spot>,
}

/// Where a value and its key stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spot {
    /// The mapping key's position (the value's own for the document root and list items).
    pub key: Position,
    /// The value's position.
    pub value: Position,
}

impl Locations {
    /// Where the value at `pointer` stands, if it exists.
    pub(crate) fn get(&self, pointer: &str) -> Option<Spot> {
        self.map.get(pointer).copied()
    }

    fn insert(&mut self, pointer: &str, spot: Spot) {
        self.map.insert(pointer.to_owned(), spot);
    }
}

/// Escapes one JSON pointer segment.
pub(crate) fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Walks `root` against `schema`, returning every problem found and the location table.
pub(crate) fn check(
    root: &Node,
    schema: &Json,
    file: &Arc<SourceFile>,
) -> (Vec<Diagnostic>, Locations) {
    let mut checker = Checker {
        schema,
        file,
        problems: Vec::new(),
        locations: Locations::default(),
    };
    let spot = Spot {
        key: root.position,
        value: root.position,
    };
    checker.node(root, schema, "", spot);
    (checker.problems, checker.locations)
}

struct Checker<'a> {
    schema: &'a Json,
    file: &'a Arc<SourceFile>,
    problems: Vec<Diagnostic>,
    locations: Locations,
}

impl<'a> Checker<'a> {
    fn resolve(&self, mut schema: &'a Json) -> &'a Json {
        // `$ref`s in a schemars document are local: `#/$defs/Name`.
        for _ in 0..32 {
            match schema.get("$ref").and_then(Json::as_str) {
                Some(reference) => {
                    let pointer = reference.trim_start_matches('#');
                    match self.schema.pointer(pointer) {
                        Some(target) => schema = target,
                        None => return schema,
                    }
                }
                None => return schema,
            }
        }
        schema
    }

    /// Whether `node` is (or reads, through an alias) a secret value that the file masks:
    /// messages then describe it without quoting it.
    fn is_secret(&self, node: &Node) -> bool {
        [&node.span, &node.defined]
            .into_iter()
            .flatten()
            .any(|range| self.file.is_masked(range))
    }

    fn problem(&mut self, position: Position, message: String) -> &mut Diagnostic {
        self.problems.push(Diagnostic::error(
            Some(Location::new(self.file, position)),
            message,
        ));
        self.problems.last_mut().expect("just pushed")
    }

    fn node(&mut self, node: &Node, schema: &'a Json, pointer: &str, spot: Spot) {
        self.locations.insert(pointer, spot);
        let schema = self.resolve(schema);
        if let Some(branches) = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Json::as_array)
        {
            // An enum whose variants carry descriptions is a `oneOf` of constants: check it
            // as one list of allowed values, so the message names them all.
            let constants: Option<Vec<Json>> = branches
                .iter()
                .map(|b| self.resolve(b).get("const").cloned())
                .collect();
            match constants {
                Some(allowed) => self.one_of_values(node, &allowed, pointer, spot),
                None => self.alternatives(node, branches, pointer, spot),
            }
            return;
        }
        if !self.type_matches(node, schema, pointer, spot) {
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Json::as_array) {
            self.one_of_values(node, allowed, pointer, spot);
        }
        if let Some(constant) = schema.get("const") {
            self.one_of_values(node, std::slice::from_ref(constant), pointer, spot);
        }
        match &node.value {
            Value::Mapping(entries) => self.mapping(entries, schema, pointer, spot),
            Value::Sequence(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        let item_spot = Spot {
                            key: item.position,
                            value: item.position,
                        };
                        self.node(item, item_schema, &format!("{pointer}/{i}"), item_spot);
                    }
                }
            }
            Value::Integer(i) => self.range(*i, schema, pointer, spot),
            _ => {}
        }
    }

    /// `anyOf` / `oneOf`: the first branch that accepts the node wins; otherwise the problems of
    /// the branch that went deepest are reported (the others would only say "wrong type").
    fn alternatives(&mut self, node: &Node, branches: &'a [Json], pointer: &str, spot: Spot) {
        let mut best: Option<(Vec<Diagnostic>, Locations)> = None;
        for branch in branches {
            let mut trial = Checker {
                schema: self.schema,
                file: self.file,
                problems: Vec::new(),
                locations: Locations::default(),
            };
            trial.node(node, branch, pointer, spot);
            if trial.problems.is_empty() {
                self.locations.map.extend(trial.locations.map);
                return;
            }
            let better = best
                .as_ref()
                .is_none_or(|(problems, _)| trial.problems.len() < problems.len());
            if better {
                best = Some((trial.problems, trial.locations));
            }
        }
        if let Some((problems, locations)) = best {
            self.problems.extend(problems);
            self.locations.map.extend(locations.map);
        }
    }

    fn type_matches(&mut self, node: &Node, schema: &Json, pointer: &str, spot: Spot) -> bool {
        let Some(expected) = schema.get("type") else {
            return true;
        };
        let names: Vec<&str> = match expected {
            Json::String(s) => vec![s.as_str()],
            Json::Array(items) => items.iter().filter_map(Json::as_str).collect(),
            _ => return true,
        };
        let ok = names.iter().any(|name| match (*name, &node.value) {
            ("null", Value::Null)
            | ("boolean", Value::Bool(_))
            | ("integer", Value::Integer(_))
            | ("number", Value::Integer(_) | Value::Float(_))
            | ("string", Value::String(_))
            | ("array", Value::Sequence(_))
            | ("object", Value::Mapping(_)) => true,
            ("integer", Value::Float(f)) => f.fract() == 0.0,
            _ => false,
        });
        if ok {
            return true;
        }
        let field = display_path(pointer);
        let wanted = names
            .iter()
            .map(|n| match *n {
                "boolean" => "a boolean (`true` or `false`)",
                "integer" => "an integer",
                "number" => "a number",
                "string" => "a string",
                "array" => "a list",
                "object" => "a mapping",
                _ => "null",
            })
            .collect::<Vec<_>>()
            .join(" or ");
        let secret = self.is_secret(node);
        let found = match &node.value {
            Value::String(_) if secret => "a string".to_owned(),
            Value::String(s) => format!("the string `{}`", shorten(s)),
            Value::Null => "nothing".to_owned(),
            other => other.kind().to_owned(),
        };
        let position = if matches!(node.value, Value::Null) {
            spot.key
        } else {
            node.position
        };
        let help = match (&node.value, names.first().copied()) {
            (Value::String(_), Some("boolean")) if secret => {
                Some("write `true` or `false` without quotes".to_owned())
            }
            (Value::String(s), Some("boolean")) => Some(format!(
                "write `true` or `false` without quotes (`{}` is read as text)",
                shorten(s)
            )),
            (Value::Null, _) => Some(format!("give `{field}` a value, or remove the line")),
            (Value::Mapping(_), Some("string")) => {
                Some("indent less: this key holds a single value, not a block".to_owned())
            }
            (_, Some("object")) => Some(format!("`{field}` holds a block of `key: value` lines")),
            _ => None,
        };
        let d = self.problem(
            position,
            format!("`{field}` must be {wanted}, found {found}"),
        );
        d.help = help;
        false
    }

    fn one_of_values(&mut self, node: &Node, allowed: &[Json], pointer: &str, spot: Spot) {
        let value = node.value.to_json();
        if allowed.contains(&value) {
            return;
        }
        let field = display_path(pointer);
        let names: Vec<String> = allowed
            .iter()
            .map(|v| match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        let shown = match &value {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        };
        let _ = spot;
        if self.is_secret(node) {
            self.problem(node.position, format!("`{field}` cannot be this value"))
                .help = Some(format!("use one of {}", backticked(&names)));
            return;
        }
        let help = suggest(&shown, names.iter().map(String::as_str))
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| format!("use one of {}", backticked(&names)));
        self.problem(
            node.position,
            format!("`{field}` cannot be `{}`", shorten(&shown)),
        )
        .help = Some(help);
    }

    fn range(&mut self, value: i128, schema: &Json, pointer: &str, spot: Spot) {
        let min = schema.get("minimum").and_then(Json::as_i64);
        let max = schema.get("maximum").and_then(Json::as_i64);
        let field = display_path(pointer);
        if pointer == "/version"
            && (min.is_some_and(|m| value < m.into()) || max.is_some_and(|m| value > m.into()))
        {
            self.problem(spot.value, format!("unsupported manifest version `{value}`"))
                .help = Some(
                "this bbsync reads manifest format version 1: write `version: 1`, or upgrade bbsync"
                    .to_owned(),
            );
            return;
        }
        if let Some(min) = min
            && value < min.into()
        {
            self.problem(
                spot.value,
                format!("`{field}` must be at least {min}, found {value}"),
            );
        } else if let Some(max) = max
            && value > max.into()
        {
            self.problem(
                spot.value,
                format!("`{field}` must be at most {max}, found {value}"),
            );
        }
    }

    fn mapping(
        &mut self,
        entries: &[(super::node::Key, Node)],
        schema: &'a Json,
        pointer: &str,
        spot: Spot,
    ) {
        let properties = schema.get("properties").and_then(Json::as_object);
        let additional = schema.get("additionalProperties");
        let mut seen: Vec<&str> = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let child_pointer = format!("{pointer}/{}", escape(&key.text));
            let child_spot = Spot {
                key: key.position,
                value: value.position,
            };
            seen.push(&key.text);
            if let Some(child) = properties.and_then(|p| p.get(&key.text)) {
                self.node(value, child, &child_pointer, child_spot);
                continue;
            }
            match additional {
                Some(Json::Bool(false)) => self.unknown_field(key, properties, pointer),
                Some(child @ Json::Object(_)) => {
                    self.node(value, child, &child_pointer, child_spot)
                }
                _ => self.locations.insert(&child_pointer, child_spot),
            }
        }
        if let Some(required) = schema.get("required").and_then(Json::as_array) {
            for name in required.iter().filter_map(Json::as_str) {
                if !seen.contains(&name) {
                    let within = display_path(pointer);
                    let message = if within.is_empty() {
                        format!("missing field `{name}`")
                    } else {
                        format!("missing field `{name}` in `{within}`")
                    };
                    let help = if pointer.is_empty() && name == "version" {
                        "start the manifest with `version: 1`".to_owned()
                    } else {
                        format!("add `{name}: ...` to this block")
                    };
                    self.problem(spot.key, message).help = Some(help);
                }
            }
        }
    }

    fn unknown_field(
        &mut self,
        key: &super::node::Key,
        properties: Option<&'a serde_json::Map<String, Json>>,
        pointer: &str,
    ) {
        let names: Vec<String> = properties
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let within = display_path(pointer);
        let message = if within.is_empty() {
            format!("unknown field `{}`", key.text)
        } else {
            format!("unknown field `{}` in `{within}`", key.text)
        };
        let help = match suggest(&key.text, names.iter().map(String::as_str)) {
            Some(s) => format!("did you mean `{s}`?"),
            None if names.is_empty() => "remove it".to_owned(),
            None => format!("expected one of {}", backticked(&names)),
        };
        self.problem(key.position, message).help = Some(help);
    }
}

/// `projects.abc.bitbucket` from `/projects/abc/bitbucket`.
pub(crate) fn display_path(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

/// The closest of `candidates` to `word`, if one is close enough to be a likely typo.
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.82)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn backticked(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 40 {
        let head: String = s.chars().take(37).collect();
        format!("{head}...")
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let names = ["fetch_branches", "prune_branches", "repository"];
        assert_eq!(
            suggest("fetch_branch", names.into_iter()),
            Some("fetch_branches")
        );
        assert_eq!(suggest("repo", names.into_iter()), Some("repository"));
        assert_eq!(suggest("zzz", names.into_iter()), None);
    }

    #[test]
    fn display_path_unescapes() {
        assert_eq!(
            display_path("/projects/a~1b/bitbucket"),
            "projects.a/b.bitbucket"
        );
        assert_eq!(display_path(""), "");
    }
}
