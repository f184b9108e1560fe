//! A cursor-paged listing read one page at a time: every connector listing (products changed
//! since a time, orders after a number) is a function of the previous page's cursor, and every
//! caller walks it the same way without ever holding more than one page.

use std::future::Future;

pub struct Pages<F> {
    fetch: F,
    cursor: Option<String>,
    done: bool,
}

impl<F> Pages<F> {
    /// `fetch(cursor)` reads the page after `cursor` (`None`: the first) and answers its items
    /// and the next page's cursor (`None`: it was the last).
    pub fn new<Fut>(fetch: F) -> Pages<F>
    where
        F: FnMut(Option<String>) -> Fut,
    {
        Pages {
            fetch,
            cursor: None,
            done: false,
        }
    }

    /// The next page; `None` once the last was read. An error leaves the cursor where it was,
    /// so the same page is read again on the next call.
    pub async fn next<T, E, Fut>(&mut self) -> Result<Option<Vec<T>>, E>
    where
        F: FnMut(Option<String>) -> Fut,
        Fut: Future<Output = Result<(Vec<T>, Option<String>), E>>,
    {
        if self.done {
            return Ok(None);
        }
        let (items, next) = (self.fetch)(self.cursor.clone()).await?;
        match next {
            Some(c) => self.cursor = Some(c),
            None => self.done = true,
        }
        Ok(Some(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn walks_every_page_once_and_retries_a_failed_one() {
        let mut fail_once = true;
        let mut calls = Vec::new();
        let mut pages = Pages::new(|c: Option<String>| {
            calls.push(c.clone());
            let fail = c.as_deref() == Some("2") && std::mem::take(&mut fail_once);
            async move {
                match c.as_deref() {
                    _ if fail => Err("flaky"),
                    None => Ok((vec![1, 2], Some("2".to_owned()))),
                    Some("2") => Ok((vec![3], Some("3".to_owned()))),
                    _ => Ok((vec![], None)),
                }
            }
        });
        let mut seen = Vec::new();
        assert_eq!(pages.next().await, Ok(Some(vec![1, 2])));
        assert_eq!(pages.next().await, Err("flaky"));
        loop {
            match pages.next().await {
                Ok(Some(p)) => seen.extend(p),
                Ok(None) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(seen, vec![3]);
        assert_eq!(pages.next().await, Ok(None), "done stays done");
        drop(pages);
        assert_eq!(
            calls,
            vec![None, Some("2".into()), Some("2".into()), Some("3".into())]
        );
    }
}
