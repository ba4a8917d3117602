//! The mirrored objects as the read API serves them: by plural name, each with the schema its
//! parameters are checked against, read from `twenty_objects` and kept for a moment.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::error::ReadError;
use crate::mirror::{ObjectRow, Store, StoreError};
use crate::query::ObjectSchema;

/// How long a catalog serves before it is read again. Discovery changes objects and fields at
/// most once a reconcile; a second's delay before a new field can be filtered on spares every
/// request reading every object's field definitions. A path that names no object reads it again
/// at once, so that an object is served as soon as discovery has stored it.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// One mirrored object.
#[derive(Debug)]
pub struct Object {
    pub singular: String,
    pub plural: String,
    pub schema: ObjectSchema,
}

/// The mirrored objects by plural name.
#[derive(Debug, Default)]
pub struct Catalog {
    by_plural: HashMap<String, Arc<Object>>,
    plural_of_singular: HashMap<String, String>,
}

impl Catalog {
    fn new(rows: Vec<ObjectRow>) -> Self {
        let mut catalog = Catalog::default();
        for row in rows.into_iter().filter(|row| row.mirrored) {
            let schema = ObjectSchema::from_metadata(&row.name_singular, row.is_custom, &row.fields);
            catalog.plural_of_singular.insert(row.name_singular.clone(), row.name_plural.clone());
            let object = Object { singular: row.name_singular, plural: row.name_plural.clone(), schema };
            catalog.by_plural.insert(row.name_plural, Arc::new(object));
        }
        catalog
    }

    /// The object a path's plural names, or Twenty's message with its hint: a singular name gets
    /// `Did you mean '<plural>'?`.
    fn object(&self, plural: &str) -> Result<Arc<Object>, String> {
        if let Some(object) = self.by_plural.get(plural) {
            return Ok(object.clone());
        }
        let shown: String = plural.chars().take(100).collect();
        Err(match self.plural_of_singular.get(plural) {
            Some(hint) => format!("object '{shown}' not found. Did you mean '{hint}'?"),
            None => format!("object '{shown}' not found."),
        })
    }

    /// The object whose singular name is `singular`: the target of a relation.
    pub fn by_singular(&self, singular: &str) -> Option<Arc<Object>> {
        self.plural_of_singular.get(singular).and_then(|plural| self.by_plural.get(plural)).cloned()
    }
}

/// The catalog, read again once it is [`FRESH_FOR`] old.
#[derive(Debug, Default)]
pub struct CatalogCache {
    current: Mutex<Option<(Instant, Arc<Catalog>)>>,
}

impl CatalogCache {
    /// The catalog and the object `plural` names in it.
    pub async fn object(
        &self,
        store: &Store,
        plural: &str,
    ) -> Result<(Arc<Catalog>, Arc<Object>), ReadError> {
        let catalog = self.get(store, false).await?;
        if let Ok(object) = catalog.object(plural) {
            return Ok((catalog, object));
        }
        let catalog = self.get(store, true).await?;
        let object = catalog.object(plural).map_err(ReadError::UnknownObject)?;
        Ok((catalog, object))
    }

    async fn get(&self, store: &Store, again: bool) -> Result<Arc<Catalog>, StoreError> {
        let cached = self.current.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some((read_at, catalog)) = cached
            && read_at.elapsed() < FRESH_FOR
            && !again
        {
            return Ok(catalog);
        }
        // Requests that find it stale together each read it; the last one stays. Cheaper than
        // making them wait on one another, and the rows are the same.
        let catalog = Arc::new(Catalog::new(store.objects().await?));
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((Instant::now(), catalog.clone()));
        Ok(catalog)
    }
}
