//! The plan file's JSON Schema (2020-12), as `bbsync schema --plan` prints it and
//! `schema/plan.schema.json` publishes it.
//!
//! It is derived (for serialisation) from the types that serialise the plan ([`Plan`] and what it holds), so it
//! cannot drift from the serializer; every object is closed (`additionalProperties: false`),
//! so a key the plan writes that the schema does not describe fails validation in the tests.

use std::sync::OnceLock;

use super::Plan;

/// Where the plan schema is published.
pub(crate) const SCHEMA_ID: &str = "https://bbsync.dev/schema/plan.schema.json";

/// The plan file's JSON Schema.
pub(crate) fn schema() -> &'static serde_json::Value {
    static SCHEMA: OnceLock<serde_json::Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        // The serialisation contract: a key is required exactly when the plan always writes
        // it (no `skip_serializing_if`), null included, which is what readers of plans get.
        let generator = schemars::generate::SchemaSettings::draft2020_12()
            .for_serialize()
            .into_generator();
        let mut schema = serde_json::to_value(generator.into_root_schema_for::<Plan>())
            .expect("a schema serialises to JSON");
        if let Some(object) = schema.as_object_mut() {
            object.insert("$id".to_owned(), SCHEMA_ID.into());
        }
        schema
    })
}

/// `bbsync schema --plan`'s output: the schema, pretty-printed, with a final newline.
pub(crate) fn schema_text() -> String {
    let mut text = serde_json::to_string_pretty(schema()).expect("a schema serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_version_is_pinned_and_every_object_is_closed() {
        let schema = schema();
        assert_eq!(
            schema["properties"]["format_version"]["const"],
            super::super::FORMAT_VERSION
        );
        fn closed(value: &serde_json::Value, at: &str) {
            match value {
                serde_json::Value::Object(map) => {
                    if map.contains_key("properties") {
                        assert_eq!(
                            map.get("additionalProperties"),
                            Some(&serde_json::Value::Bool(false)),
                            "an open object at {at}"
                        );
                    }
                    for (key, inner) in map {
                        closed(inner, &format!("{at}/{key}"));
                    }
                }
                serde_json::Value::Array(items) => {
                    items.iter().for_each(|item| closed(item, at));
                }
                _ => {}
            }
        }
        closed(schema, "#");
    }
}
