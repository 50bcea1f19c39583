//! Roots the store was read not to know, remembered in a bounded set.
//!
//! The set exists for one reason: a patch for a root the store does not know is
//! dropped, and without the set every such patch would cost a store read. Anyone
//! who may publish can name any number of roots, so the set is bounded and evicts
//! the oldest entry first. Recency is not tracked: a miss costs one store read,
//! the same as a first sight, so keeping hot entries longer would save nothing
//! worth a dependency or a linked list.
//!
//! An entry is a cache, never an answer: a load request for a remembered root
//! reads the store again (another storage node may have registered it since), and
//! a `stored` notice for it (a registration elsewhere) forgets it.

use std::collections::{HashSet, VecDeque};

use crate::Hash;

#[derive(Debug)]
pub(super) struct AbsentRoots {
    order: VecDeque<Hash>,
    members: HashSet<Hash>,
    capacity: usize,
}

impl AbsentRoots {
    pub(super) fn new(capacity: usize) -> AbsentRoots {
        AbsentRoots {
            order: VecDeque::new(),
            members: HashSet::new(),
            capacity: capacity.max(1),
        }
    }

    pub(super) fn contains(&self, root: &Hash) -> bool {
        self.members.contains(root)
    }

    pub(super) fn len(&self) -> usize {
        self.members.len()
    }

    pub(super) fn insert(&mut self, root: Hash) {
        if !self.members.insert(root) {
            return;
        }
        self.order.push_back(root);
        while self.members.len() > self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.members.remove(&oldest);
        }
    }

    pub(super) fn remove(&mut self, root: &Hash) -> bool {
        if !self.members.remove(root) {
            return false;
        }
        // Rare (a registration, a request): a linear scan keeps `order` exact
        // without a second index.
        self.order.retain(|h| h != root);
        true
    }

    pub(super) fn clear(&mut self) {
        self.order.clear();
        self.members.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_at_most_its_capacity_and_evicts_the_oldest() {
        let h = |i: u32| Hash::of_canonical_bytes(&i.to_le_bytes());
        let mut set = AbsentRoots::new(3);
        for i in 0..10 {
            set.insert(h(i));
            assert!(set.len() <= 3);
        }
        assert!(!set.contains(&h(6)));
        assert!(set.contains(&h(7)) && set.contains(&h(9)));
        // Inserting a member again changes nothing.
        set.insert(h(9));
        assert_eq!(set.len(), 3);
        assert!(set.remove(&h(8)));
        assert!(!set.remove(&h(8)));
        set.insert(h(10));
        set.insert(h(11));
        assert_eq!(set.len(), 3);
        assert!(!set.contains(&h(7)), "oldest gone first");
    }
}
