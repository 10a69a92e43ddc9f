//! An upload's claim on the dedup index: the reservation under which its
//! source and link are made outside the index's lock (see `super`).

use super::{Change, Content, Dedup, Sig};
use std::io;

impl Dedup {
    /// An upload of content `sig` that will be `link`: link it to the
    /// source of that content (reserved, the intent logged), or place it as
    /// a new source when there is none (or only `avoid`, found broken). Waits
    /// while another upload places the same content, so that it is stored
    /// once.
    pub fn claim(&self, sig: Sig, link: &str, avoid: Option<&str>) -> io::Result<Claim<'_>> {
        let mut g = self.lock();
        while g.g.placing.contains(&sig) {
            self.settled.wait(&mut g.g);
        }
        let src = (g.g.by_sig.get(&sig))
            .filter(|s| Some(s.as_str()) != avoid && g.g.by_src.contains_key(s.as_str()))
            .cloned();
        let Some(src) = src else {
            g.g.placing.insert(sig);
            return Ok(Claim::New(Placing {
                d: self,
                sig,
                avoid: avoid.map(str::to_string),
                named: None,
                live: true,
            }));
        };
        let ticket = g.begin(vec![Change::Link {
            src: src.clone(),
            link: link.to_string(),
        }])?;
        g.g.by_src.get_mut(&src).expect("checked above").reserved += 1;
        Ok(Claim::Link(Pending {
            d: self,
            ticket,
            src,
            open: true,
        }))
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
        let c = (inner.by_src.get_mut(&self.src)).expect("a reserved source stays");
        c.reserved -= 1;
        inner.stats.count(&c.sig, c.refs, -1);
        c.refs += 1;
        inner.stats.count(&c.sig, c.refs, 1);
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
        let c = (g.g.by_src.get_mut(&self.src)).expect("a reserved source stays");
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
/// content wait until [`Placing::placed`], or until this is dropped (the
/// placing failed; the next one places it).
#[must_use]
pub struct Placing<'a> {
    d: &'a Dedup,
    sig: Sig,
    avoid: Option<String>,
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
        let ticket = self.d.lock().begin(vec![
            Change::Source {
                sig: self.sig,
                src: src.to_string(),
            },
            Change::Link {
                src: src.to_string(),
                link: link.to_string(),
            },
        ])?;
        self.named = Some((ticket, src.to_string()));
        Ok(())
    }

    /// The source's file is in place and logged: it is the content's source
    /// from now on, and the link's reference is reserved.
    pub fn placed(mut self) -> Pending<'a> {
        let (ticket, src) = self.named.take().expect("begin before placed");
        self.live = false;
        let d = self.d;
        let mut g = d.lock();
        let inner = &mut *g.g;
        if let Some(c) = inner.under_way.get_mut(&ticket) {
            c.retain(|c| matches!(c, Change::Link { .. }));
        }
        let keep = match inner.by_sig.get(&self.sig) {
            Some(old)
                if old.as_str() < src.as_str()
                    && inner.by_src.contains_key(old)
                    && self.avoid.as_ref() != Some(old) =>
            {
                old.clone()
            }
            _ => src.clone(),
        };
        inner.by_sig.insert(self.sig, keep);
        let sig = self.sig;
        let c = inner.by_src.entry(src.clone()).or_insert_with(|| {
            inner.stats.contents += 1;
            Content::new(sig, 0)
        });
        c.reserved += 1;
        // Nothing else links to it yet: if this link fails, it goes.
        c.drop_later = true;
        inner.placing.remove(&self.sig);
        d.settled.notify_all();
        Pending {
            d,
            ticket,
            src,
            open: true,
        }
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
        g.g.placing.remove(&self.sig);
        self.d.settled.notify_all();
    }
}
