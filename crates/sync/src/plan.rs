//! What a child's copy of a parent product should be, given the child's rules and the copy as
//! it is now. Pure: the engine fetches, this decides, the engine writes.

use ferry_connect::shopify::model::{
    Image, ImageInput, Product, ProductInput, Variant, VariantInput,
};
use serde_json::{Map, Value, json};

use crate::rules::{Field, Rules, cents};

/// The tag ferry puts on every copy it makes: how a retry finds a copy whose create was
/// applied but whose answer was lost (instead of making a second one).
pub fn source_tag(parent_product: &str) -> String {
    let n = parent_product.rsplit('/').next().unwrap_or(parent_product);
    format!("ferry-src-{n}")
}

/// The last segment of a URL's path, without its query.
fn basename(url: &str) -> Option<&str> {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let rest = path.split_once("://").map_or(path, |(_, r)| r);
    let (_, name) = rest.rsplit_once('/')?;
    (!name.is_empty()).then_some(name)
}

fn image_prefix(parent: &Image) -> String {
    let n = parent.id.rsplit('/').next().unwrap_or(&parent.id);
    format!("ferry-{n}-")
}

/// The name ferry uploads a parent's image under in a child, `ferry-{image number}-{name}`:
/// the child serves its copy from its own URL, and this name is how the copy is known again
/// (the platform keeps it, or appends to it when taken).
pub fn image_filename(parent: &Image) -> String {
    format!(
        "{}{}",
        image_prefix(parent),
        basename(&parent.url).unwrap_or("image.jpg")
    )
}

/// The child's copy of a parent image, if it has one.
pub fn image_copy<'a>(parent: &Image, child: &'a Product) -> Option<&'a Image> {
    let prefix = image_prefix(parent);
    child
        .images
        .iter()
        .find(|c| basename(&c.url).is_some_and(|b| b.starts_with(&prefix)))
}

fn same_sku(a: &Option<String>, b: &Option<String>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => !a.is_empty() && a.eq_ignore_ascii_case(b),
        _ => false,
    }
}

/// The child variant that is the copy of a parent variant: the same SKU, or (when the parent
/// variant has none) the same options.
pub fn twin<'a>(pv: &Variant, child: &'a Product) -> Option<&'a Variant> {
    child
        .variants
        .iter()
        .find(|cv| same_sku(&pv.sku, &cv.sku))
        .or_else(|| {
            pv.sku
                .is_none()
                .then(|| child.variants.iter().find(|cv| cv.options == pv.options))
                .flatten()
        })
}

fn tags_with(mut tags: Vec<String>, tag: &str) -> Vec<String> {
    if !tags.iter().any(|t| t == tag) {
        tags.push(tag.to_owned());
    }
    tags
}

/// The input that makes `child` (or a new copy, when there is none) what the rules say.
pub fn plan(parent: &Product, rules: &Rules, child: Option<&Product>) -> ProductInput {
    let tag = source_tag(&parent.id);
    // A new copy starts from the parent in every field; later, a field the child owns stays
    // as the child has it.
    let take = |f: Field| child.is_none() || rules.takes(f);
    // A scalar field: the parent's, or the copy's own where the child keeps it.
    let pick = |f: Field, get: fn(&Product) -> &String| -> String {
        match (take(f), child) {
            (false, Some(c)) => get(c).clone(),
            _ => get(parent).clone(),
        }
    };
    let variants: Vec<VariantInput> = match child {
        Some(c) if !rules.takes(Field::Variants) => c
            .variants
            .iter()
            .map(|cv| {
                let from_parent = parent.variants.iter().find(|pv| same_sku(&pv.sku, &cv.sku));
                let price = match from_parent {
                    Some(pv) if rules.takes(Field::Prices) => rules.price(&pv.price),
                    _ => cv.price.clone(),
                };
                VariantInput {
                    id: Some(cv.id.clone()),
                    sku: cv.sku.clone(),
                    price,
                    options: cv.options.clone(),
                }
            })
            .collect(),
        _ => parent
            .variants
            .iter()
            .map(|pv| {
                let existing = child.and_then(|c| twin(pv, c));
                let price = match existing {
                    Some(cv) if !rules.takes(Field::Prices) => cv.price.clone(),
                    _ => rules.price(&pv.price),
                };
                VariantInput {
                    id: existing.map(|cv| cv.id.clone()),
                    sku: pv.sku.clone(),
                    price,
                    options: pv.options.clone(),
                }
            })
            .collect(),
    };
    let tags = match child {
        Some(c) if !rules.takes(Field::Tags) => c.tags.clone(),
        _ => parent.tags.clone(),
    };
    // The child's images become the parent's, in the parent's order: a copy it has already is
    // kept by id, the others are uploaded from the parent's URL.
    let images = match child {
        Some(_) if !rules.takes(Field::Images) => None,
        _ => Some(
            parent
                .images
                .iter()
                .map(|pi| match child.and_then(|c| image_copy(pi, c)) {
                    Some(ci) => ImageInput {
                        id: Some(ci.id.clone()),
                        alt: pi.alt.clone(),
                        ..ImageInput::default()
                    },
                    None => ImageInput {
                        id: None,
                        source: Some(pi.url.clone()),
                        filename: Some(image_filename(pi)),
                        alt: pi.alt.clone(),
                    },
                })
                .collect(),
        ),
    };
    ProductInput {
        title: pick(Field::Title, |p| &p.title),
        handle: child.is_none().then(|| parent.handle.clone()),
        status: Some(pick(Field::Status, |p| &p.status)),
        vendor: Some(pick(Field::Vendor, |p| &p.vendor)),
        product_type: Some(pick(Field::ProductType, |p| &p.product_type)),
        description_html: Some(pick(Field::Description, |p| &p.description_html)),
        tags: tags_with(tags, &tag),
        variants,
        images,
    }
}

fn same_price(a: &str, b: &str) -> bool {
    match (cents(a), cents(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn sorted(v: &[String]) -> Vec<&String> {
    let mut s: Vec<&String> = v.iter().collect();
    s.sort();
    s
}

/// Whether `child` already is what `input` asks for (then nothing is written).
pub fn satisfied(input: &ProductInput, child: &Product) -> bool {
    let scalar = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
    input.title == child.title
        && scalar(&input.status, &child.status)
        && scalar(&input.vendor, &child.vendor)
        && scalar(&input.product_type, &child.product_type)
        && scalar(&input.description_html, &child.description_html)
        && sorted(&input.tags) == sorted(&child.tags)
        && input.images.as_ref().is_none_or(|want| {
            want.len() == child.images.len()
                && want
                    .iter()
                    .zip(&child.images)
                    .all(|(w, c)| w.id.as_ref() == Some(&c.id) && w.alt == c.alt)
        })
        && input.variants.len() == child.variants.len()
        && input.variants.iter().all(|iv| {
            iv.id.as_ref().is_some_and(|id| {
                child.variants.iter().any(|cv| {
                    &cv.id == id
                        && cv.sku == iv.sku
                        && cv.options == iv.options
                        && same_price(&cv.price, &iv.price)
                })
            })
        })
}

/// The input that puts a product back as it was (a saga's compensation).
pub fn restore(before: &Product) -> ProductInput {
    ProductInput {
        title: before.title.clone(),
        handle: None,
        status: Some(before.status.clone()),
        vendor: Some(before.vendor.clone()),
        product_type: Some(before.product_type.clone()),
        description_html: Some(before.description_html.clone()),
        tags: before.tags.clone(),
        variants: before
            .variants
            .iter()
            .map(|v| VariantInput {
                id: Some(v.id.clone()),
                sku: v.sku.clone(),
                price: v.price.clone(),
                options: v.options.clone(),
            })
            .collect(),
        images: Some(
            before
                .images
                .iter()
                .map(|i| ImageInput {
                    id: Some(i.id.clone()),
                    alt: i.alt.clone(),
                    ..ImageInput::default()
                })
                .collect(),
        ),
    }
}

fn variant_summary(v: &[(Option<String>, String)]) -> Value {
    json!(
        v.iter()
            .map(|(sku, price)| json!({"sku": sku, "price": price}))
            .collect::<Vec<_>>()
    )
}

/// The fields a write changes, as `{field: [old, new]}` (old is null for a new copy), for
/// the audit log.
pub fn changes(before: Option<&Product>, after: &ProductInput) -> Map<String, Value> {
    let mut out = Map::new();
    let mut put = |name: &str, old: Option<Value>, new: Value| {
        if old.as_ref() != Some(&new) {
            out.insert(name.to_owned(), json!([old, new]));
        }
    };
    put("title", before.map(|b| json!(b.title)), json!(after.title));
    for (name, old, new) in [
        ("status", before.map(|b| &b.status), &after.status),
        ("vendor", before.map(|b| &b.vendor), &after.vendor),
        (
            "product_type",
            before.map(|b| &b.product_type),
            &after.product_type,
        ),
        (
            "description",
            before.map(|b| &b.description_html),
            &after.description_html,
        ),
    ] {
        if let Some(new) = new {
            put(name, old.map(|o| json!(o)), json!(new));
        }
    }
    put(
        "tags",
        before.map(|b| json!(sorted(&b.tags))),
        json!(sorted(&after.tags)),
    );
    let old_vs: Option<Vec<(Option<String>, String)>> = before.map(|b| {
        b.variants
            .iter()
            .map(|v| (v.sku.clone(), v.price.clone()))
            .collect()
    });
    let new_vs: Vec<(Option<String>, String)> = after
        .variants
        .iter()
        .map(|v| (v.sku.clone(), v.price.clone()))
        .collect();
    put(
        "variants",
        old_vs.as_deref().map(variant_summary),
        variant_summary(&new_vs),
    );
    if let Some(images) = &after.images {
        // An image by its file name (kept ones by the name the child has them under).
        let name = |url: &str| json!(basename(url).unwrap_or(url));
        let old = before.map(|b| {
            json!(
                b.images
                    .iter()
                    .map(|i| json!({"file": name(&i.url), "alt": i.alt}))
                    .collect::<Vec<_>>()
            )
        });
        let new: Vec<Value> = images
            .iter()
            .map(|i| {
                let file = match (&i.id, &i.filename) {
                    (Some(id), _) => before
                        .and_then(|b| b.images.iter().find(|x| &x.id == id))
                        .map_or(json!(id), |x| name(&x.url)),
                    (None, Some(f)) => json!(f),
                    (None, None) => json!(i.source),
                };
                json!({"file": file, "alt": i.alt})
            })
            .collect();
        put("images", old, json!(new));
    }
    out
}

/// The handles of a product's collections, sorted.
pub fn collection_handles(p: &Product) -> Vec<String> {
    let mut h: Vec<String> = p.collections.iter().map(|c| c.handle.clone()).collect();
    h.sort();
    h.dedup();
    h
}

/// Whether the child's copy is in the collections the parent's product is in (by handle),
/// when the child takes collections from the parent.
pub fn collections_match(parent: &Product, rules: &Rules, child: &Product) -> bool {
    !rules.takes(Field::Collections) || collection_handles(parent) == collection_handles(child)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variant(id: &str, sku: &str, price: &str, size: &str) -> Variant {
        Variant {
            id: id.into(),
            sku: Some(sku.into()),
            price: price.into(),
            options: vec![("Size".into(), size.into())],
            inventory_item_id: format!("item-{id}"),
            available: Some(5),
        }
    }

    fn product(id: &str, title: &str, variants: Vec<Variant>) -> Product {
        Product {
            id: id.into(),
            title: title.into(),
            handle: "tee".into(),
            status: "ACTIVE".into(),
            vendor: "Acme".into(),
            product_type: "Shirt".into(),
            tags: vec!["summer".into()],
            description_html: "<p>soft</p>".into(),
            updated_at: 1,
            variants,
            collections: Vec::new(),
            images: Vec::new(),
        }
    }

    fn image(id: &str, url: &str, alt: &str) -> Image {
        Image {
            id: id.into(),
            url: url.into(),
            alt: alt.into(),
        }
    }

    fn parent() -> Product {
        product(
            "gid://shopify/Product/7",
            "Tee",
            vec![
                variant("p1", "T-S", "10.00", "S"),
                variant("p2", "T-M", "12.00", "M"),
            ],
        )
    }

    #[test]
    fn a_new_copy_is_the_parent_with_the_price_rule_and_ferrys_tag() {
        let rules = Rules::marked_up(10.0, ".99");
        let input = plan(&parent(), &rules, None);
        assert_eq!(input.title, "Tee");
        assert_eq!(input.handle.as_deref(), Some("tee"));
        assert_eq!(
            input.tags,
            vec!["summer".to_owned(), "ferry-src-7".to_owned()]
        );
        let prices: Vec<&str> = input.variants.iter().map(|v| v.price.as_str()).collect();
        assert_eq!(prices, vec!["11.99", "13.99"]);
        assert!(input.variants.iter().all(|v| v.id.is_none()));
    }

    #[test]
    fn fields_the_child_owns_are_kept_and_variants_pair_by_sku() {
        let mut child = product(
            "gid://shopify/Product/900",
            "Our Tee",
            vec![
                variant("c2", "t-m", "15.00", "M"),
                variant("c1", "T-S", "14.00", "S"),
            ],
        );
        child.tags = vec!["local".into(), "ferry-src-7".into()];
        let rules = Rules {
            fields: [Field::Variants, Field::Vendor].into_iter().collect(),
            price: None,
        };
        let input = plan(&parent(), &rules, Some(&child));
        assert_eq!(input.title, "Our Tee", "the child owns its title");
        assert_eq!(input.tags, child.tags, "and its tags");
        assert_eq!(input.handle, None, "a handle is only set on create");
        let ids: Vec<Option<&str>> = input.variants.iter().map(|v| v.id.as_deref()).collect();
        assert_eq!(ids, vec![Some("c1"), Some("c2")], "SKUs match without case");
        let prices: Vec<&str> = input.variants.iter().map(|v| v.price.as_str()).collect();
        assert_eq!(prices, vec!["14.00", "15.00"], "the child owns its prices");
        assert!(
            !satisfied(&input, &child),
            "SKU spelling differs: t-m → T-M"
        );

        let all = plan(&parent(), &Rules::default(), Some(&child));
        assert_eq!(all.title, "Tee");
        assert_eq!(all.variants[0].price, "10.00");
    }

    #[test]
    fn a_copy_that_matches_needs_no_write_and_restore_round_trips() {
        let p = parent();
        let input = plan(&p, &Rules::default(), None);
        let mut copy = p.clone();
        copy.id = "gid://shopify/Product/901".into();
        copy.tags = input.tags.clone();
        for (v, id) in copy.variants.iter_mut().zip(["c1", "c2"]) {
            v.id = id.into();
            v.price = format!("{}0", v.price.trim_end_matches('0'));
        }
        let again = plan(&p, &Rules::default(), Some(&copy));
        assert!(satisfied(&again, &copy), "10.0 and 10.00 are one price");
        let mut edited = copy.clone();
        edited.title = "Changed".into();
        assert!(!satisfied(&again, &edited));
        let back = restore(&copy);
        assert!(satisfied(&back, &copy));
        let diff = changes(Some(&edited), &again);
        assert_eq!(diff.get("title"), Some(&json!(["Changed", "Tee"])));
        assert!(!diff.contains_key("vendor"));
    }

    #[test]
    fn images_are_kept_by_their_copy_and_uploaded_when_the_child_lacks_one() {
        let mut p = parent();
        p.images = vec![
            image(
                "gid://shopify/MediaImage/12",
                "https://cdn/p/front.jpg?v=1",
                "Front",
            ),
            image(
                "gid://shopify/MediaImage/13",
                "https://cdn/p/back.jpg",
                "Back",
            ),
        ];
        let mut child = p.clone();
        child.tags.push(source_tag(&p.id));
        child.images = vec![
            image(
                "gid://shopify/MediaImage/900",
                "https://cdn/c/own.jpg",
                "Ours",
            ),
            // ferry's copy of 12 (the platform appended to a taken name): not of 123, 1 or 2.
            image(
                "gid://shopify/MediaImage/901",
                "https://cdn/c/ferry-12-front_9a.jpg",
                "old",
            ),
        ];
        let input = plan(&p, &Rules::default(), Some(&child));
        let images = input.images.clone().expect("images are planned");
        assert_eq!(
            images.len(),
            2,
            "the child's own image is dropped: parent precedence"
        );
        assert_eq!(
            images[0].id.as_deref(),
            Some("gid://shopify/MediaImage/901")
        );
        assert_eq!(images[0].alt, "Front", "the alt follows the parent");
        assert_eq!(images[1].id, None);
        assert_eq!(images[1].source.as_deref(), Some("https://cdn/p/back.jpg"));
        assert_eq!(images[1].filename.as_deref(), Some("ferry-13-back.jpg"));
        assert!(!satisfied(&input, &child));
        let diff = changes(Some(&child), &input);
        assert_eq!(
            diff["images"][1],
            json!([{"file": "ferry-12-front_9a.jpg", "alt": "Front"}, {"file": "ferry-13-back.jpg", "alt": "Back"}])
        );

        // Once the child has both copies in order with the alts, nothing is written.
        child.images = vec![
            image(
                "gid://shopify/MediaImage/901",
                "https://cdn/c/ferry-12-front_9a.jpg",
                "Front",
            ),
            image(
                "gid://shopify/MediaImage/902",
                "https://cdn/c/ferry-13-back.jpg",
                "Back",
            ),
        ];
        let again = plan(&p, &Rules::default(), Some(&child));
        assert!(satisfied(&again, &child), "{again:?} {child:?}");
        child.images.swap(0, 1);
        assert!(
            !satisfied(&plan(&p, &Rules::default(), Some(&child)), &child),
            "order counts"
        );

        // A child that owns its images is left with them.
        let own = Rules::all_but(Field::Images);
        let input = plan(&p, &own, Some(&child));
        assert_eq!(input.images, None);
        assert!(satisfied(&input, &child));
        assert!(satisfied(&restore(&child), &child));
    }
}
