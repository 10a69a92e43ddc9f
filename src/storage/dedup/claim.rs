//! An upload's claim on the dedup index: the reservation under which its
//! source and link are made outside the index's lock (see `super`).

use super::{Change, Content, Dedup, Hash, Key, insert, read_content};
use std::io;

/// At most this many sources of an upload's key whose hash is not known yet
/// are read and hashed for one upload. Beyond that (CRC32 collisions made on
/// purpose, say) the upload is stored as a new content: it costs space, never
/// more than this many reads per upload. Each source is read once: its hash
/// is kept.
pub const MAX_HASHED: usize = 4;

impl Dedup {
    /// An upload of a content of key `key` that will be `link`: link it to
    /// a source of the same content (reserved, the intent logged), or place
    /// it as a new source when there is none (or only `avoid`, found
    /// broken). Waits while another upload places a content of this key, so
    /// that a content uploaded twice at once is stored once.
    ///
    /// `upload_hash` gives the upload's hash; it is called (once) only when
    /// sources of this key exist. Their hashes, when not known yet, are
    /// read from their files outside the lock and kept (at most
    /// [`MAX_HASHED`] per call).
    pub fn claim(
        &self,
        key: Key,
        mut upload_hash: impl FnMut() -> io::Result<Hash>,
        link: &str,
        avoid: Option<&str>,
    ) -> io::Result<Claim<'_>> {
        let mut mine: Option<Hash> = None;
        // Sources not to link to: the broken one, and those that could not be read.
        let mut skip: Vec<String> = avoid.map(str::to_string).into_iter().collect();
        let mut hashed = 0;
        loop {
            let mut g = self.lock();
            while g.g.placing.contains(&key) {
                self.settled.wait(&mut g.g);
            }
            let inner = &*g.g;
            let candidates: Vec<(&str, Option<Hash>)> = (inner.by_key.get(&key))
                .map(|v| {
                    (v.iter())
                        .map(|s| &**s)
                        .filter(|s| !skip.iter().any(|k| k == s))
                        .map(|s| (s, inner.by_src[s].hash))
                        .collect()
                })
                .unwrap_or_default();
            if candidates.is_empty() {
                return Ok(self.place(g, key, mine));
            }
            let Some(hash) = mine else {
                drop(candidates);
                drop(g);
                mine = Some(upload_hash()?);
                continue;
            };
            // In name order: the first of equal ones, as on every server.
            if let Some((src, _)) = candidates.iter().find(|(_, h)| *h == Some(hash)) {
                let src = src.to_string();
                let (ticket, intent) = g.begin(vec![Change::Link {
                    src: src.clone(),
                    link: link.to_string(),
                }])?;
                g.g.by_src
                    .get_mut(src.as_str())
                    .expect("a candidate")
                    .reserved += 1;
                drop(g);
                let pending = Pending {
                    d: self,
                    ticket,
                    src,
                    open: true,
                };
                // On failure, dropping `pending` gives the reservation back.
                intent.write()?;
                return Ok(Claim::Link(pending));
            }
            let unknown = candidates.iter().find(|(_, h)| h.is_none());
            let Some((src, _)) = unknown.filter(|_| hashed < MAX_HASHED) else {
                return Ok(self.place(g, key, mine));
            };
            let src = src.to_string();
            drop(candidates);
            drop(g);
            hashed += 1;
            let read = (self.path_of(&src))
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not ours"))
                .and_then(|p| read_content(&p));
            match read {
                Ok((_, h)) => self.lock().learn_hash(&src, h)?,
                Err(e) => {
                    log::warn!("dedup: reading source {src} to compare it: {e}");
                    skip.push(src);
                }
            }
        }
    }

    /// The upload places its content as a new source of `key`.
    fn place(&self, mut g: super::Locked<'_>, key: Key, hash: Option<Hash>) -> Claim<'_> {
        g.g.placing.insert(key);
        Claim::New(Placing {
            d: self,
            key,
            hash,
            named: None,
            live: true,
        })
    }
}

/// What an upload does with its content, as [`Dedup::claim`] decided.
pub enum Claim<'a> {
    /// Link to an existing source.
    Link(Pending<'a>),
    /// Place the content as a new source first.
    New(Placing<'a>),
}

/// A link to `src` being made outside the lock: counted by [`Pending::made`],
/// given back by [`Pending::failed`] (or when dropped). Meanwhile the source
/// cannot go.
#[must_use]
pub struct Pending<'a> {
    d: &'a Dedup,
    ticket: u64,
    src: String,
    open: bool,
}

impl Pending<'_> {
    /// The source the link points at.
    pub fn src(&self) -> &str {
        &self.src
    }

    /// The link is made and logged: count it.
    pub fn made(mut self) {
        self.open = false;
        let mut g = self.d.lock();
        g.g.under_way.remove(&self.ticket);
        let inner = &mut *g.g;
        let c = (inner.by_src.get_mut(self.src.as_str())).expect("a reserved source stays");
        c.reserved -= 1;
        inner.stats.count(&c.key, c.refs, -1);
        c.refs += 1;
        inner.stats.count(&c.key, c.refs, 1);
        c.drop_later = false;
    }

    /// The link was not made. True when the source should go now (nothing
    /// links to it, and it was new or its last link went meanwhile): the
    /// caller drops it ([`Locked::drop_source`]).
    pub fn failed(mut self) -> bool {
        self.open = false;
        self.give_back()
    }

    fn give_back(&self) -> bool {
        let mut g = self.d.lock();
        g.g.under_way.remove(&self.ticket);
        let c = (g.g.by_src.get_mut(self.src.as_str())).expect("a reserved source stays");
        c.reserved -= 1;
        c.refs == 0 && c.reserved == 0 && c.drop_later
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.open {
            // An early return: the source, if left unlinked, goes with the
            // next client delete or start-up.
            self.give_back();
        }
    }
}

/// A new content being placed under a source name: uploads of the same
/// key wait until [`Placing::placed`], or until this is dropped (the
/// placing failed; the next one places it).
#[must_use]
pub struct Placing<'a> {
    d: &'a Dedup,
    key: Key,
    /// Known when sources of the same key had to be compared.
    hash: Option<Hash>,
    /// (ticket, source) once the intents are logged.
    named: Option<(u64, String)>,
    /// Still in `Inner::placing` (until placed or dropped).
    live: bool,
}

impl<'a> Placing<'a> {
    /// Log that `src` is about to hold the content and `link` to point at
    /// it. Once per placing.
    pub fn begin(&mut self, src: &str, link: &str) -> io::Result<()> {
        assert!(self.named.is_none(), "a content is placed once");
        let (ticket, intent) = self.d.lock().begin(vec![
            Change::Source {
                key: self.key,
                hash: self.hash,
                src: src.to_string(),
            },
            Change::Link {
                src: src.to_string(),
                link: link.to_string(),
            },
        ])?;
        // On failure, dropping `self` takes the ticket back.
        self.named = Some((ticket, src.to_string()));
        intent.write()
    }

    /// The source's file and the upload's link to it are in place, logged
    /// together ([`crate::storage::binlog::Binlog::append_all_now`]): the
    /// content is stored, with that one link. One lock, where placing and
    /// then linking would take two.
    pub fn linked(mut self) {
        let (ticket, src) = self.named.take().expect("begin before linked");
        self.live = false;
        let d = self.d;
        let mut g = d.lock();
        let inner = &mut *g.g;
        inner.under_way.remove(&ticket);
        let c = Content::new(self.key, self.hash, 0);
        if insert(&mut inner.by_key, &mut inner.by_src, src.as_str(), c) {
            inner.stats.contents += 1;
        }
        let c = inner.by_src.get_mut(src.as_str()).expect("inserted above");
        inner.stats.count(&c.key, c.refs, -1);
        c.refs += 1;
        inner.stats.count(&c.key, c.refs, 1);
        inner.placing.remove(&self.key);
        d.settled.notify_all();
    }
}

impl Drop for Placing<'_> {
    fn drop(&mut self) {
        if !self.live {
            return;
        }
        let mut g = self.d.lock();
        if let Some((ticket, _)) = self.named.take() {
            g.g.under_way.remove(&ticket);
        }
        g.g.placing.remove(&self.key);
        self.d.settled.notify_all();
    }
}
