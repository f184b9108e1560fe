//! The Admin GraphQL (2026-04) documents the connector sends, with the cost Shopify will
//! charge for each (object 1, connection 2 + first × node, mutation 10), which is what the
//! rate budget reserves before sending.

/// Variants read with a product in one call; a product with more is paged.
pub const VARIANTS_PAGE: usize = 30;
/// Images read with a product; a product with more has them read in a second call.
pub const MEDIA_PAGE: usize = 10;
/// Products per page when streaming: 2 + 7 × (1 + 2 + 30 × 3 + 2 + 20 + 2 + 10 × 2) = 961
/// points, under the 1,000-point cap per query (a variant costs 3: itself, its options, its
/// inventory item; the collections connection 2 + 20; an image 2: itself and its image).
pub const PRODUCTS_PAGE: usize = 7;

pub const PRODUCT_FIELDS: &str = r#"
fragment ProductFields on Product {
  id title handle status vendor productType tags descriptionHtml updatedAt
  variants(first: 30) {
    nodes { id sku price inventoryQuantity selectedOptions { name value } inventoryItem { id } }
    pageInfo { hasNextPage endCursor }
  }
  collections(first: 20) { nodes { id handle title } }
  media(first: 10) { nodes { id alt ... on MediaImage { image { url } } } pageInfo { hasNextPage } }
}"#;

/// `product(id:)` with its first page of variants.
pub const PRODUCT: &str = r#"
query Product($id: ID!) { product(id: $id) { ...ProductFields } }"#;
pub const PRODUCT_COST: f64 =
    1.0 + 2.0 + VARIANTS_PAGE as f64 * 3.0 + 2.0 + 20.0 + 2.0 + MEDIA_PAGE as f64 * 2.0;

/// All of a product's images (Shopify allows 250).
pub const MEDIA: &str = r#"
query Media($id: ID!) {
  product(id: $id) {
    media(first: 250) { nodes { id alt ... on MediaImage { image { url } } } pageInfo { hasNextPage } }
  }
}"#;
pub const MEDIA_COST: f64 = 1.0 + 2.0 + 250.0 * 2.0;

/// More variants of one product.
pub const VARIANTS: &str = r#"
query Variants($id: ID!, $after: String) {
  product(id: $id) {
    variants(first: 100, after: $after) {
      nodes { id sku price inventoryQuantity selectedOptions { name value } inventoryItem { id } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"#;
pub const VARIANTS_COST: f64 = 1.0 + 2.0 + 100.0 * 3.0;

/// Products updated since a time, oldest first, a page after a cursor.
pub const PRODUCTS_SINCE: &str = r#"
query Changed($q: String, $after: String) {
  products(first: 7, after: $after, query: $q, sortKey: UPDATED_AT) {
    nodes { ...ProductFields }
    pageInfo { hasNextPage endCursor }
  }
}"#;
pub const PRODUCTS_SINCE_COST: f64 = 2.0 + PRODUCTS_PAGE as f64 * PRODUCT_COST;

pub const VARIANTS_BY_SKU: &str = r#"
query BySku($q: String!) {
  productVariants(first: 50, query: $q) {
    nodes { id sku product { id } inventoryItem { id } }
  }
}"#;
pub const VARIANTS_BY_SKU_COST: f64 = 2.0 + 50.0 * 3.0;

/// The variants of several SKUs with their prices, and the shop's currency (an order's check).
pub const PRICED_BY_SKUS: &str = r#"
query Priced($q: String!, $first: Int!) {
  shop { currencyCode }
  productVariants(first: $first, query: $q) {
    nodes { id sku price product { id } inventoryItem { id } }
  }
}"#;

/// Its cost with `first` variants.
pub fn priced_by_skus_cost(first: usize) -> f64 {
    3.0 + first as f64 * 3.0
}

pub const PRODUCT_SET: &str = r#"
mutation Set($input: ProductSetInput!, $identifier: ProductSetIdentifiers) {
  productSet(input: $input, identifier: $identifier, synchronous: true) {
    product { ...ProductFields }
    userErrors { field message code }
  }
}"#;

pub const ARCHIVE: &str = r#"
mutation Archive($id: ID!) {
  productUpdate(product: {id: $id, status: ARCHIVED}) {
    product { id status }
    userErrors { field message }
  }
}"#;

pub const ADJUST: &str = r#"
mutation Adjust($input: InventoryAdjustQuantitiesInput!, $key: String!) {
  inventoryAdjustQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id changes { name delta quantityAfterChange item { id } location { id } } }
    userErrors { field message code }
  }
}"#;

pub const LEVEL: &str = r#"
query Level($item: ID!, $location: ID!) {
  inventoryItem(id: $item) {
    inventoryLevel(locationId: $location) { quantities(names: ["available", "on_hand"]) { name quantity } }
  }
}"#;
pub const LEVEL_COST: f64 = 3.0;

pub const SET: &str = r#"
mutation Set($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input) {
    inventoryAdjustmentGroup { id changes { name delta quantityAfterChange } }
    userErrors { field message code }
  }
}"#;

pub const SUBSCRIBE: &str = r#"
mutation Subscribe($topic: WebhookSubscriptionTopic!, $uri: String!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: {uri: $uri}) {
    webhookSubscription { id topic uri }
    userErrors { field message }
  }
}"#;

pub const LOCATIONS: &str = r#"
query Locations { locations(first: 50) { nodes { id name } } }"#;
pub const LOCATIONS_COST: f64 = 2.0 + 50.0;

/// What the token in use was granted (any kind of token: a legacy app's too).
pub const ACCESS_SCOPES: &str = r#"
query AccessScopes { currentAppInstallation { accessScopes { handle } } }"#;
pub const ACCESS_SCOPES_COST: f64 = 2.0;

pub const MUTATION_COST: f64 = 10.0;

/// Products carrying a tag (ferry tags its copies, to find one made by a write whose answer
/// was lost).
pub const PRODUCTS_TAGGED: &str = r#"
query Tagged($q: String!) {
  products(first: 5, query: $q) { nodes { ...ProductFields } }
}"#;
pub const PRODUCTS_TAGGED_COST: f64 = 2.0 + 5.0 * PRODUCT_COST;

/// Orders after an id (ids grow with time), oldest first. Small pages: a sale check runs
/// often and its cost is reserved up front.
pub const ORDERS_AFTER: &str = r#"
query Orders($q: String, $after: String) {
  orders(first: 5, after: $after, query: $q) {
    nodes { id legacyResourceId lineItems(first: 20) { nodes { sku quantity variant { id } } } }
    pageInfo { hasNextPage endCursor }
  }
}"#;
pub const ORDERS_AFTER_COST: f64 = 2.0 + 5.0 * (1.0 + 2.0 + 20.0 * 2.0);

/// A collection by its handle.
pub const COLLECTION_BY_HANDLE: &str = r#"
query ColByHandle($q: String!) { collections(first: 1, query: $q) { nodes { id handle title } } }"#;
pub const COLLECTION_BY_HANDLE_COST: f64 = 3.0;

pub const COLLECTION_CREATE: &str = r#"
mutation ColCreate($input: CollectionInput!) {
  collectionCreate(input: $input) {
    collection { id handle title }
    userErrors { field message }
  }
}"#;
