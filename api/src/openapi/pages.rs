//! Page schemas that reference their item schema: utoipa writes `Page<T>` as `Page_T` with a
//! copy of `T` inline, so a generated client would get a second, anonymous `T` per list.

use utoipa::Modify;
use utoipa::openapi::schema::{ArrayBuilder, Schema};
use utoipa::openapi::{OpenApi, Ref, RefOr};

/// Points `results.items` of every `Page_T` at `#/components/schemas/T`.
#[derive(Debug)]
pub struct PageItemsByReference;

impl Modify for PageItemsByReference {
    fn modify(&self, openapi: &mut OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let known: Vec<String> = components.schemas.keys().cloned().collect();
        for (name, schema) in components.schemas.iter_mut() {
            let Some(item) = name.strip_prefix("Page_") else {
                continue;
            };
            if !known.iter().any(|k| k == item) {
                continue;
            }
            let RefOr::T(Schema::Object(page)) = schema else {
                continue;
            };
            let Some(RefOr::T(Schema::Array(results))) = page.properties.get_mut("results") else {
                continue;
            };
            let description = results.description.take();
            *results = ArrayBuilder::new()
                .items(Ref::from_schema_name(item))
                .description(description)
                .build();
        }
    }
}
