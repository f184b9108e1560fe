//! ferry's canonical catalog model, and Shopify's shapes it is read from.

use serde::{Deserialize, Serialize};

/// A product as ferry sees it on any platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// The platform's id (a GID on Shopify).
    pub id: String,
    pub title: String,
    pub handle: String,
    /// `ACTIVE`, `ARCHIVED` or `DRAFT`.
    pub status: String,
    pub vendor: String,
    pub product_type: String,
    pub tags: Vec<String>,
    #[serde(default)]
    pub description_html: String,
    /// Epoch milliseconds.
    pub updated_at: i64,
    pub variants: Vec<Variant>,
    /// The collections it is in (the first 20).
    #[serde(default)]
    pub collections: Vec<Collection>,
    /// Its images, in order.
    #[serde(default)]
    pub images: Vec<Image>,
}

/// A product image as the store serves it (from its own CDN: a copy's URL is not the
/// original's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub id: String,
    pub url: String,
    pub alt: String,
}

/// One image of a product being written: one the store has, by id, or a new one uploaded
/// from `source` under `filename`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInput {
    pub id: Option<String>,
    pub source: Option<String>,
    pub filename: Option<String>,
    pub alt: String,
}

/// A collection: stores name their own ids, so copies are matched by handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collection {
    pub id: String,
    pub handle: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    pub id: String,
    pub sku: Option<String>,
    /// A decimal string, as the platform prints it.
    pub price: String,
    /// (option name, value), in the product's option order.
    pub options: Vec<(String, String)>,
    pub inventory_item_id: String,
    /// `available` summed over the store's locations, when read.
    #[serde(default)]
    pub available: Option<i64>,
}

/// What ferry writes: the fields it owns. List fields are always sent whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProductInput {
    pub title: String,
    pub handle: Option<String>,
    pub status: Option<String>,
    pub vendor: Option<String>,
    pub product_type: Option<String>,
    pub tags: Vec<String>,
    pub description_html: Option<String>,
    pub variants: Vec<VariantInput>,
    /// The whole image list, or `None` to leave the images as they are.
    #[serde(default)]
    pub images: Option<Vec<ImageInput>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VariantInput {
    /// The existing variant to update, when known.
    pub id: Option<String>,
    pub sku: Option<String>,
    pub price: String,
    pub options: Vec<(String, String)>,
}

/// A variant found by SKU.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantRef {
    pub id: String,
    pub sku: Option<String>,
    pub product_id: String,
    pub inventory_item_id: String,
}

/// A variant found by SKU with its current price.
#[derive(Debug, Clone, PartialEq)]
pub struct PricedVariant {
    pub variant: VariantRef,
    /// A decimal string in the shop's currency, as the platform prints it.
    pub price: String,
}

/// Variants found by SKU with their prices, and the currency the prices are in.
#[derive(Debug, Clone, PartialEq)]
pub struct Priced {
    pub currency: String,
    pub variants: Vec<PricedVariant>,
}

/// One inventory change asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryDelta {
    pub inventory_item_id: String,
    pub location_id: String,
    pub delta: i64,
    /// The quantity expected now (compare-and-swap), or `None` to skip the check.
    pub change_from: Option<i64>,
}

// ---- Shopify's shapes -------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GqlProduct {
    pub id: String,
    pub title: String,
    pub handle: String,
    pub status: String,
    pub vendor: String,
    pub product_type: String,
    pub tags: Vec<String>,
    #[serde(default)]
    pub description_html: String,
    pub updated_at: String,
    pub variants: GqlVariantConnection,
    #[serde(default)]
    pub collections: Option<GqlCollections>,
    #[serde(default)]
    pub media: Option<GqlMedia>,
}

/// What is left to read after a product's first page.
pub(crate) struct More {
    pub variants: Option<String>,
    pub media: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GqlMedia {
    pub nodes: Vec<GqlMediaNode>,
    #[serde(default)]
    pub page_info: PageInfo,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlMediaNode {
    pub id: String,
    #[serde(default)]
    pub alt: Option<String>,
    /// Only images have one (`... on MediaImage`); videos and 3D models are not synced.
    #[serde(default)]
    pub image: Option<GqlUrl>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlUrl {
    pub url: String,
}

impl GqlMedia {
    pub fn images(self) -> Vec<Image> {
        self.nodes
            .into_iter()
            .filter_map(|n| {
                n.image.map(|i| Image {
                    id: n.id,
                    url: i.url,
                    alt: n.alt.unwrap_or_default(),
                })
            })
            .collect()
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlCollections {
    pub nodes: Vec<Collection>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GqlVariantConnection {
    pub nodes: Vec<GqlVariant>,
    pub page_info: PageInfo,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PageInfo {
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GqlVariant {
    pub id: String,
    pub sku: Option<String>,
    pub price: String,
    pub selected_options: Vec<GqlOption>,
    pub inventory_item: GqlId,
    #[serde(default)]
    pub inventory_quantity: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlOption {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlId {
    pub id: String,
}

impl From<GqlVariant> for Variant {
    fn from(v: GqlVariant) -> Variant {
        Variant {
            id: v.id,
            sku: v.sku.filter(|s| !s.is_empty()),
            price: v.price,
            options: v
                .selected_options
                .into_iter()
                .map(|o| (o.name, o.value))
                .collect(),
            inventory_item_id: v.inventory_item.id,
            available: v.inventory_quantity,
        }
    }
}

/// An order as ferry reads it: its lines' variants and quantities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    /// The numeric part of the id, increasing with time within a store.
    pub number: u64,
    pub lines: Vec<OrderLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderLine {
    pub variant_id: Option<String>,
    pub sku: Option<String>,
    pub quantity: i64,
}
