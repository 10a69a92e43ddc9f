//! The loop's slab of connections: slots reused through a free list, each
//! with a generation (epoch) bumped on every reuse, so a completion meant for
//! a closed connection never reaches the next one in its slot.

pub(super) struct Slab<T> {
    slots: Vec<Option<T>>,
    free: Vec<usize>,
    epochs: Vec<u64>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            epochs: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    pub(super) fn insert_with(&mut self, f: impl FnOnce(u64) -> T) -> usize {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.epochs.push(0);
                self.slots.len() - 1
            }
        };
        self.epochs[idx] += 1;
        self.slots[idx] = Some(f(self.epochs[idx]));
        idx
    }
    pub(super) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.slots.get_mut(i).and_then(|s| s.as_mut())
    }
    pub(super) fn remove(&mut self, i: usize) -> Option<T> {
        let t = self.slots.get_mut(i)?.take()?;
        self.free.push(i);
        Some(t)
    }
    pub(super) fn is_empty(&self) -> bool {
        self.free.len() == self.slots.len()
    }
    pub(super) fn indices(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].is_some())
            .collect()
    }
}
