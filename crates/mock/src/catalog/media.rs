//! Images: the store's Files library (unique file names, CDN urls) and a product's media.

use super::*;

/// The last segment of a URL's path, without its query.
pub(crate) fn basename(url: &str) -> Option<&str> {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let rest = path.split_once("://").map_or(path, |(_, r)| r);
    let (_, name) = rest.rsplit_once('/')?;
    (!name.is_empty()).then_some(name)
}

impl Catalog {
    /// Adds an image to the library, as an upload named `name` would.
    pub(crate) fn add_file(&mut self, name: &str, alt: &str) -> u64 {
        let id = self.id();
        let mut filename = name.to_owned();
        if self.filenames.contains(&filename) {
            filename = match name.rsplit_once('.') {
                Some((stem, ext)) => format!("{stem}_{id:x}.{ext}"),
                None => format!("{name}_{id:x}"),
            };
        }
        self.filenames.insert(filename.clone());
        let url = format!("https://cdn.mock.shop/s/files/{}/{filename}", self.shop);
        self.files.insert(
            id,
            MediaFile {
                id,
                alt: alt.to_owned(),
                filename,
                url,
            },
        );
        id
    }

    /// Makes `files` a product's image list (validated before).
    pub(crate) fn set_media(&mut self, id: u64, files: &[FileSpec]) {
        let mut list = Vec::with_capacity(files.len());
        for f in files {
            let fid = match (f.id, f.source.as_deref()) {
                (Some(fid), _) => fid,
                (None, Some(src)) => {
                    let name = f
                        .filename
                        .clone()
                        .or_else(|| basename(src).map(str::to_owned))
                        .unwrap_or_else(|| "image".into());
                    self.add_file(&name, f.alt.as_deref().unwrap_or_default())
                }
                (None, None) => continue,
            };
            if let (Some(alt), Some(file)) = (&f.alt, self.files.get_mut(&fid)) {
                file.alt = alt.clone();
            }
            if !list.contains(&fid) {
                list.push(fid);
            }
        }
        if let Some(p) = self.products.get_mut(&id) {
            p.media = list;
        }
    }
}
