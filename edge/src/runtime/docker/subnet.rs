//! The pool that instance networks take their subnets from.
//!
//! Docker's default address pools hold about 30 bridge networks. Skerry creates each
//! instance network with an explicit, small subnet: the pool (10.213.0.0/16 by default) is
//! cut into blocks (/26 by default, 1024 of them), and a new network gets the first block
//! that overlaps no existing Docker network. The engine's own network list is the state, so
//! nothing needs remembering across agent restarts.

use std::fmt;
use std::net::Ipv4Addr;

/// An IPv4 subnet (`10.213.0.64/26`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subnet {
    addr: u32,
    prefix: u8,
}

impl Subnet {
    /// The subnet that holds `addr`, with the host bits cleared. `None` for a prefix above 32.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        (prefix <= 32).then(|| Self {
            addr: u32::from(addr) & mask(prefix),
            prefix,
        })
    }

    /// Parses `a.b.c.d/n`. IPv6 subnets and garbage give `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = s.trim().split_once('/')?;
        let addr: Ipv4Addr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        Self::new(addr, prefix)
    }

    pub fn addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.addr)
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The first and last address.
    fn range(&self) -> (u32, u32) {
        (self.addr, self.addr | !mask(self.prefix))
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        let (a0, a1) = self.range();
        let (b0, b1) = other.range();
        a0 <= b1 && b0 <= a1
    }

    /// Whether `other` lies wholly inside this subnet.
    pub fn contains(&self, other: &Subnet) -> bool {
        let (a0, a1) = self.range();
        let (b0, b1) = other.range();
        a0 <= b0 && b1 <= a1
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.prefix)
    }
}

/// The netmask of a prefix length (0..=32).
fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p if p >= 32 => u32::MAX,
        p => u32::MAX << (32 - u32::from(p)),
    }
}

/// A pool cut into equal blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubnetPool {
    pool: Subnet,
    block: u8,
}

impl SubnetPool {
    /// A pool of `block`-sized subnets inside `addr/prefix`. `addr` must be the pool's
    /// first address, and a block must fit in the pool and hold at least a gateway and
    /// two hosts (/30 at most).
    pub fn new(addr: Ipv4Addr, prefix: u8, block: u8) -> Result<Self, String> {
        let pool = Subnet::new(addr, prefix)
            .ok_or_else(|| format!("subnet pool {addr}/{prefix}: prefix above 32"))?;
        if pool.addr() != addr {
            return Err(format!(
                "subnet pool {addr}/{prefix}: host bits are set (did you mean {pool}?)"
            ));
        }
        if block < prefix || block > 30 {
            return Err(format!(
                "subnet block /{block}: must lie between the pool's /{prefix} and /30"
            ));
        }
        Ok(Self { pool, block })
    }

    pub fn pool(&self) -> Subnet {
        self.pool
    }

    /// How many blocks the pool holds.
    pub fn len(&self) -> u64 {
        1u64 << (self.block - self.pool.prefix)
    }

    /// Always false: a valid pool holds at least one block.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The blocks, lowest first.
    pub fn blocks(&self) -> impl Iterator<Item = Subnet> + '_ {
        let size = 1u64 << (32 - u32::from(self.block));
        (0..self.len()).filter_map(move |i| {
            let addr = u64::from(self.pool.addr) + i * size;
            let addr = u32::try_from(addr).ok()?;
            Some(Subnet {
                addr,
                prefix: self.block,
            })
        })
    }

    /// The first block that overlaps none of `used`.
    pub fn first_free(&self, used: &[Subnet]) -> Option<Subnet> {
        // Only the subnets that touch the pool matter.
        let used: Vec<&Subnet> = used.iter().filter(|s| s.overlaps(&self.pool)).collect();
        self.blocks()
            .find(|block| used.iter().all(|u| !u.overlaps(block)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(s: &str) -> Subnet {
        Subnet::parse(s).unwrap()
    }

    fn default_pool() -> SubnetPool {
        SubnetPool::new(Ipv4Addr::new(10, 213, 0, 0), 16, 26).unwrap()
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(subnet("10.213.0.64/26").to_string(), "10.213.0.64/26");
        assert_eq!(subnet("10.213.0.65/26").to_string(), "10.213.0.64/26");
        assert_eq!(Subnet::parse("fd00::/64"), None);
        assert_eq!(Subnet::parse("10.0.0.0/33"), None);
        assert_eq!(Subnet::parse("10.0.0.0"), None);
    }

    #[test]
    fn overlap_and_containment() {
        let a = subnet("10.213.0.0/26");
        assert!(a.overlaps(&subnet("10.213.0.63/32")));
        assert!(!a.overlaps(&subnet("10.213.0.64/26")));
        assert!(a.overlaps(&subnet("10.0.0.0/8")));
        assert!(subnet("10.213.0.0/16").contains(&subnet("10.213.255.192/26")));
        assert!(!subnet("10.213.0.0/16").contains(&subnet("10.212.0.0/15")));
        assert!(subnet("0.0.0.0/0").contains(&a));
    }

    #[test]
    fn default_pool_holds_1024_blocks() {
        let pool = default_pool();
        assert_eq!(pool.len(), 1024);
        let blocks: Vec<Subnet> = pool.blocks().collect();
        assert_eq!(blocks.len(), 1024);
        assert_eq!(blocks[0].to_string(), "10.213.0.0/26");
        assert_eq!(blocks[1].to_string(), "10.213.0.64/26");
        assert_eq!(blocks[1023].to_string(), "10.213.255.192/26");
    }

    #[test]
    fn first_free_skips_used_and_overlapping_blocks() {
        let pool = default_pool();
        assert_eq!(pool.first_free(&[]), Some(subnet("10.213.0.0/26")));
        let used = [
            subnet("172.17.0.0/16"),
            subnet("10.213.0.0/26"),
            // Someone else's /24 covers the next three blocks too.
            subnet("10.213.0.0/24"),
        ];
        assert_eq!(pool.first_free(&used), Some(subnet("10.213.1.0/26")));
        // A freed block in the middle is taken again first.
        let used = [subnet("10.213.0.0/26"), subnet("10.213.0.128/26")];
        assert_eq!(pool.first_free(&used), Some(subnet("10.213.0.64/26")));
    }

    #[test]
    fn full_pool_has_no_block() {
        let pool = SubnetPool::new(Ipv4Addr::new(10, 9, 0, 0), 24, 26).unwrap();
        assert_eq!(pool.len(), 4);
        assert_eq!(pool.first_free(&[subnet("10.0.0.0/8")]), None);
    }

    #[test]
    fn bad_pools_are_refused() {
        assert!(SubnetPool::new(Ipv4Addr::new(10, 213, 0, 1), 16, 26).is_err());
        assert!(SubnetPool::new(Ipv4Addr::new(10, 213, 0, 0), 16, 8).is_err());
        assert!(SubnetPool::new(Ipv4Addr::new(10, 213, 0, 0), 16, 31).is_err());
        assert!(SubnetPool::new(Ipv4Addr::new(10, 213, 0, 0), 40, 40).is_err());
    }
}
