//! Discovery through the paged metadata envelope: a reconcile finds every object however the
//! metadata API pages them.

use serde_json::json;
use twenty_mirror::mirror::{Mode, RunStatus, Trigger};
use twenty_mirror::sync::reconciler::RunRequest;

use crate::helpers::fake_twenty::{FakeTwenty, MetadataShape};
use crate::helpers::{assert_mirror_matches, fresh_store, reconciler};

#[tokio::test]
async fn discovery_follows_every_page_of_objects() {
    for shape in [MetadataShape::Flat, MetadataShape::Nested] {
        let fake = FakeTwenty::start().await;
        // Seven objects, two a page: the custom ones are on pages three and four.
        fake.add_object("pet", "pets", true);
        fake.add_object("websiteProperty", "websiteProperties", true);
        fake.set_metadata_shape(shape);
        fake.set_metadata_page_size(Some(2));
        fake.create("pet", json!({"name": "Rex"}));
        fake.create("websiteProperty", json!({"name": "home"}));
        let (_db, store) = fresh_store().await;
        let outcome = reconciler(&store, &fake, |_, _| {})
            .reconcile_once(RunRequest::new(Trigger::Operator, Mode::Delta))
            .await
            .expect("a run");
        assert_eq!(outcome.status, RunStatus::Succeeded, "{shape:?}: {:?}", outcome.error);
        let mut mirrored: Vec<String> = store
            .objects()
            .await
            .unwrap()
            .into_iter()
            .filter(|o| o.mirrored)
            .map(|o| o.name_singular)
            .collect();
        mirrored.sort();
        assert_eq!(mirrored, ["company", "opportunity", "person", "pet", "websiteProperty"], "{shape:?}");
        assert_mirror_matches(&store, &fake, "pet").await;
        assert_mirror_matches(&store, &fake, "websiteProperty").await;
        let pages = fake.requests().iter().filter(|r| r.path == "/rest/metadata/objects").count();
        assert_eq!(pages, 4, "{shape:?}");
    }
}
