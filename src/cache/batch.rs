//! Batch endpoints through the entity cache: every id is looked up as its own entity first,
//! and only the misses go to the backend, in ONE call; each item of the answer is stored as
//! its own entity (so a later batch, or a single GET of the same entity, finds it).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt;
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use tokio::time::Instant;

use super::policy::{self, BatchEndpoint};
use super::store::{Entry, Freshness};
use super::{CacheMetrics, UpstreamCache};
use crate::request::{CallContext, Deadline};
use crate::upstream::{Upstream, UpstreamError, UpstreamErrorKind};

/// A batch answer's items, as the bytes they are in the answer.
#[derive(Deserialize)]
struct Items<'a> {
    #[serde(borrow)]
    items: Vec<&'a RawValue>,
}

/// The string member named `.0` of a JSON object, every other member skipped unread.
struct IdOf<'f>(&'f str);

impl<'de> DeserializeSeed<'de> for IdOf<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for IdOf<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut id = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if id.is_none() && key == self.0 {
                id = map.next_value::<Option<String>>()?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(id)
    }
}

impl UpstreamCache {
    /// The bodies of the items `ids` name, in that order, unknown ids left out.
    pub(crate) async fn get_batch(
        &self,
        upstream: &Upstream,
        ctx: &CallContext,
        batch: &BatchEndpoint<'_>,
        ids: &[&str],
    ) -> Result<Vec<Bytes>, UpstreamError> {
        let name = upstream.name();
        let now = Instant::now();
        let mut found: Vec<Option<Bytes>> = vec![None; ids.len()];
        let mut missing: Vec<usize> = Vec::new();
        let mut stale: HashMap<usize, Arc<Entry>> = HashMap::new();
        let mut refresh: Vec<&str> = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let (_, base) = batch.entity(name, id);
            let Some(entry) = self.lookup(&base, ctx).await else {
                missing.push(i);
                continue;
            };
            match entry.freshness(now) {
                Freshness::Fresh => {
                    self.count(ctx, "hit", &self.metrics().hits);
                    ctx.cache_notes.served(entry.age(now));
                    found[i] = Some(entry.body.clone());
                }
                Freshness::Revalidate => {
                    self.count(ctx, "stale", &self.metrics().stale_served);
                    ctx.cache_notes.served_while_revalidating(entry.age(now));
                    found[i] = Some(entry.body.clone());
                    refresh.push(id);
                }
                Freshness::Stale => {
                    missing.push(i);
                    stale.insert(i, entry);
                }
            }
        }
        if !refresh.is_empty() {
            self.refresh_batch(upstream, ctx, batch, &refresh);
        }
        if missing.is_empty() {
            return Ok(found.into_iter().flatten().collect());
        }
        for _ in &missing {
            self.count(ctx, "miss", &self.metrics().misses);
        }
        let wanted: Vec<&str> = missing.iter().map(|&i| ids[i]).collect();
        match self.fill_batch(upstream, ctx, batch, &wanted).await {
            Ok(body) => {
                let mut items = split(name, &body, batch.id_field)?;
                for &i in &missing {
                    found[i] = items.remove(ids[i]);
                }
            }
            Err(e) => {
                // Stale data may stand in only if it covers every id the call was for.
                let covered = missing
                    .iter()
                    .all(|i| stale.get(i).is_some_and(|entry| self.stands_in(&e, entry)));
                if !covered {
                    return Err(e);
                }
                for &i in &missing {
                    if let Some(entry) = stale.get(&i) {
                        self.served_on_error(ctx, &e, entry);
                        found[i] = Some(entry.body.clone());
                    }
                }
            }
        }
        Ok(found.into_iter().flatten().collect())
    }

    /// ONE backend call for `ids`, shared by concurrent callers asking the same batch; each
    /// item is stored as its own entity before the flight ends. Answers the batch body.
    fn fill_batch(
        &self,
        upstream: &Upstream,
        ctx: &CallContext,
        batch: &BatchEndpoint<'_>,
        ids: &[&str],
    ) -> impl Future<Output = Result<Bytes, UpstreamError>> + use<> {
        let path = (batch.path)(ids);
        let flight_key = policy::identity_key(&policy::request_key(upstream.name(), &path), ctx);
        let (this, upstream, ctx) = (self.clone(), upstream.clone(), ctx.clone());
        let service = upstream.name().to_owned();
        let (kind, view) = (batch.kind.to_owned(), batch.view.map(str::to_owned));
        let id_field = batch.id_field.to_owned();
        self.store().flight(&flight_key, &service, move || {
            async move {
                let fetched = upstream.get(&ctx, &path).await?;
                let items = split(upstream.name(), &fetched.body, &id_field)?;
                // One map for every item (an owned connection's head builds it on asking).
                let headers = fetched.headers();
                for (id, body) in items {
                    let (tag, key) =
                        policy::view_entity(upstream.name(), &kind, view.as_deref(), &id);
                    this.put(&key, &ctx, Some(&tag), &headers, body).await;
                }
                Ok(fetched.body)
            }
            .boxed()
        })
    }

    fn refresh_batch(
        &self,
        upstream: &Upstream,
        ctx: &CallContext,
        batch: &BatchEndpoint<'_>,
        ids: &[&str],
    ) {
        let path = (batch.path)(ids);
        let flight_key = policy::identity_key(&policy::request_key(upstream.name(), &path), ctx);
        if self.store().is_in_flight(&flight_key) {
            return;
        }
        CacheMetrics::inc(&self.metrics().refreshes);
        let mut background = ctx.clone();
        background.deadline = Deadline::after(upstream.background_budget());
        background.cache_notes = Arc::default();
        drop(self.fill_batch(upstream, &background, batch, ids));
    }
}

/// The items of a batch answer by id, each as its own JSON body: a slice of `body`, nothing
/// copied or re-encoded.
fn split(
    service: &str,
    body: &Bytes,
    id_field: &str,
) -> Result<HashMap<String, Bytes>, UpstreamError> {
    let bad = |detail: String| UpstreamError::new(service, UpstreamErrorKind::BadResponse, detail);
    let page: Items =
        serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let mut out = HashMap::with_capacity(page.items.len());
    for item in page.items {
        let mut reader = serde_json::Deserializer::from_str(item.get());
        let id = IdOf(id_field).deserialize(&mut reader);
        let Ok(Some(id)) = id else {
            return Err(bad(format!("a batch item has no string {id_field}")));
        };
        out.insert(id, body.slice_ref(item.get().as_bytes()));
    }
    Ok(out)
}
