//! The generator's own follow graph: which edges exist (to never emit a duplicate
//! follow or an unfollow of a missing edge), a uniform pick among all edges (for
//! unfollows), and each user's followers (so likes come mostly from followers).
//! Every operation is O(1); removal swaps the last element into the hole and patches
//! the moved element's recorded positions.

use rustc_hash::FxHashMap;

#[derive(Clone, Copy)]
struct Slot {
    /// Position in `Graph::edges`.
    edge: u32,
    /// Position of the follower in `Graph::followers[followed]`.
    follower: u32,
}

#[derive(Default)]
pub(crate) struct Graph {
    /// `(follower, followed)`, in insertion order until the first removal.
    edges: Vec<(u32, u32)>,
    slots: FxHashMap<u64, Slot>,
    followers: Vec<Vec<u32>>,
}

fn key(follower: u32, followed: u32) -> u64 {
    (u64::from(follower) << 32) | u64::from(followed)
}

impl Graph {
    pub(crate) fn with_capacity(users: usize, edges: usize) -> Self {
        Graph {
            edges: Vec::with_capacity(edges),
            slots: FxHashMap::with_capacity_and_hasher(edges, Default::default()),
            followers: vec![Vec::new(); users],
        }
    }

    pub(crate) fn add_user(&mut self) {
        self.followers.push(Vec::new());
    }

    pub(crate) fn len(&self) -> usize {
        self.edges.len()
    }

    pub(crate) fn edge(&self, i: usize) -> (u32, u32) {
        self.edges[i]
    }

    pub(crate) fn followers(&self, user: u32) -> &[u32] {
        &self.followers[user as usize]
    }

    /// Adds `follower -> followed`; false for a self-follow or an existing edge.
    pub(crate) fn follow(&mut self, follower: u32, followed: u32) -> bool {
        if follower == followed {
            return false;
        }
        let list = &mut self.followers[followed as usize];
        let slot = Slot {
            edge: self.edges.len() as u32,
            follower: list.len() as u32,
        };
        match self.slots.entry(key(follower, followed)) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(slot);
                list.push(follower);
                self.edges.push((follower, followed));
                true
            }
        }
    }

    /// Removes the `i`-th edge and returns it as `(follower, followed)`.
    pub(crate) fn remove_at(&mut self, i: usize) -> (u32, u32) {
        let (follower, followed) = self.edges.swap_remove(i);
        let slot = self
            .slots
            .remove(&key(follower, followed))
            .expect("every edge has a slot");
        if let Some(&(f, t)) = self.edges.get(i) {
            self.slots.get_mut(&key(f, t)).expect("moved edge").edge = i as u32;
        }
        let list = &mut self.followers[followed as usize];
        let at = slot.follower as usize;
        list.swap_remove(at);
        if let Some(&f) = list.get(at) {
            self.slots
                .get_mut(&key(f, followed))
                .expect("moved follower")
                .follower = at as u32;
        }
        (follower, followed)
    }

    #[cfg(test)]
    fn contains(&self, follower: u32, followed: u32) -> bool {
        self.slots.contains_key(&key(follower, followed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_keeps_edges_followers_and_positions_consistent() {
        let mut g = Graph::with_capacity(5, 0);
        for (f, t) in [(0, 1), (2, 1), (3, 1), (0, 2), (4, 1), (1, 0)] {
            assert!(g.follow(f, t));
        }
        assert!(!g.follow(0, 1), "duplicate");
        assert!(!g.follow(3, 3), "self-follow");
        assert_eq!(g.remove_at(1), (2, 1));
        assert!(!g.contains(2, 1));
        assert_eq!(g.followers(1), &[0, 4, 3]);
        // Remove everything in a scrambled order; every step must find its slot.
        while g.len() > 0 {
            let i = (g.len() * 7 + 3) % g.len();
            let (f, t) = g.remove_at(i);
            assert!(!g.contains(f, t));
            assert!(!g.followers(t).contains(&f));
        }
        assert!(g.follow(2, 1));
        assert_eq!(g.followers(1), &[2]);
    }
}
