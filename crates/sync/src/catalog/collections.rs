//! Collections in a child, matched to the parent's by handle and made when missing (two pushes
//! making the same one at once: the loser adopts the winner's).

use ferry_connect::shopify::ShopifyConnector;
use ferry_db::exec;
use serde_json::{Value, json};

use crate::engine::Engine;
use crate::error::SyncError;
use crate::network::StoreConfig;

/// A create refused because the handle is in use (the payload names the field, not a code).
pub(crate) fn handle_taken(e: &ferry_connect::ConnectError) -> bool {
    match e {
        ferry_connect::ConnectError::UserErrors { errors, .. } => errors.iter().any(|u| {
            u.code.as_deref() == Some("TAKEN")
                || u.field
                    .as_ref()
                    .is_some_and(|f| f.last().is_some_and(|x| x == "handle"))
        }),
        _ => false,
    }
}

impl Engine {
    /// The child's copy of a parent collection: remembered, found by handle, or made.
    pub(crate) async fn child_collection(
        &self,
        child: &StoreConfig,
        shop: &ShopifyConnector,
        pc: &ferry_connect::shopify::model::Collection,
    ) -> Result<String, SyncError> {
        let known: Option<(String,)> = ferry_db::row!(
            self.db(),
            (String,),
            "SELECT collection FROM ferry_collections WHERE child = $1 AND handle = $2",
            &child.name,
            &pc.handle
        )?;
        if let Some((id,)) = known {
            return Ok(id);
        }
        let c = match shop.collection_by_handle(&pc.handle).await? {
            Some(c) => c,
            None => {
                let c = match shop.create_collection(&pc.title, &pc.handle).await {
                    Ok(c) => c,
                    // Another push made it meanwhile: use that one.
                    Err(e) if handle_taken(&e) => shop
                        .collection_by_handle(&pc.handle)
                        .await?
                        .ok_or(SyncError::Connect(e))?,
                    Err(e) => return Err(e.into()),
                };
                self.inner
                    .net
                    .audit(
                        &child.name,
                        &c.id,
                        "create_collection",
                        &json!({"handle": [Value::Null, pc.handle]}),
                        "collection membership",
                    )
                    .await?;
                c
            }
        };
        exec!(
            self.db(),
            "INSERT INTO ferry_collections (child, handle, collection) VALUES ($1, $2, $3)
             ON CONFLICT (child, handle) DO UPDATE SET collection = $3",
            &child.name,
            &pc.handle,
            &c.id
        )?;
        Ok(c.id)
    }
}
