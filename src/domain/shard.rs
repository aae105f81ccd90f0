//! Which shard holds what, when a cluster splits its orders over several
//! failover groups (docs/multi-node.md, "shard groups").
//!
//! A shard holds whole orders and whole products: an order's every step,
//! and every reservation of a product's stock or a pool's units, is decided
//! by the one node that leads its shard. That is how stock of one SKU is
//! never oversold across shards without a protocol between them: the
//! order is *placed* on the shard of what it draws on, and its id is made
//! so that it names that shard from then on.
//!
//! Both sides hash with FNV-1a ([`super::partition::fnv1a`]), the event
//! stream's partition function, so a client in another language can tell
//! where an order or a product lives in a few lines of code.

use super::partition::partition;
use super::{Invalid, OrderId, Sku};

/// How many ids a shard makes, at most, to find one that hashes to it.
/// Each try lands on a given one of `count` shards with probability
/// `1 / count`, so with 64 shards the chance that 4,096 tries all miss is
/// below 1 in 10^27: running out means `make` does not vary its ids.
const TRIES_PER_SHARD: u32 = 64;

/// The shards of a cluster: `count` of them, numbered from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shards {
    count: u32,
}

impl Shards {
    /// `count` shards; one at least (one shard is a plain failover group).
    pub fn new(count: u32) -> Shards {
        Shards { count: count.max(1) }
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// The shard that holds an order: its id decides, for good.
    pub fn of_order(&self, order: &OrderId) -> u32 {
        partition(order.as_str(), self.count)
    }

    /// The shard that holds a product, its stock and its units.
    pub fn of_sku(&self, sku: &Sku) -> u32 {
        partition(sku.as_str(), self.count)
    }

    /// Where an order drawing on `skus` is placed: the one shard that holds
    /// them all; `None` for an order that draws on nothing (a workflow that
    /// reserves nothing), which any shard may take.
    ///
    /// Lines on different shards are refused rather than split: stock
    /// taken on two shards would need a protocol between their leaders to
    /// be taken or given back together.
    pub fn of_lines<'a>(&self, skus: impl IntoIterator<Item = &'a Sku>) -> Result<Option<u32>, Invalid> {
        let mut placed: Option<(u32, &Sku)> = None;
        for sku in skus {
            let shard = self.of_sku(sku);
            match placed {
                None => placed = Some((shard, sku)),
                Some((first, first_sku)) if first != shard => {
                    return Err(Invalid::new(format!(
                        "the items are held on different shards ({first_sku} on shard {first}, {sku} on \
                         shard {shard}), so they cannot be reserved together: place them as separate orders"
                    )))
                }
                Some(_) => {}
            }
        }
        Ok(placed.map(|(shard, _)| shard))
    }

    /// An id for a new order on `shard`: the first of `make`'s ids that
    /// hashes to it. `None` only if `make` keeps making ids of other shards
    /// far beyond chance (a `make` that does not vary), or `shard` is not
    /// one of these.
    pub fn order_id_on(&self, shard: u32, mut make: impl FnMut() -> OrderId) -> Option<OrderId> {
        if shard >= self.count {
            return None;
        }
        (0..self.count.saturating_mul(TRIES_PER_SHARD)).map(|_| make()).find(|id| self.of_order(id) == shard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sku(s: &str) -> Sku {
        Sku::parse(s).unwrap()
    }

    /// Ids `ord-0`, `ord-1`, ... in turn.
    fn counting() -> impl FnMut() -> OrderId {
        let mut n = 0;
        move || {
            n += 1;
            OrderId::parse(&format!("ord-{n}")).unwrap()
        }
    }

    /// Two SKUs that hash to different shards of `shards`.
    fn apart(shards: Shards) -> (Sku, Sku) {
        let first = sku("sku-0");
        let other =
            (1..).map(|n| sku(&format!("sku-{n}"))).find(|s| shards.of_sku(s) != shards.of_sku(&first));
        (first, other.expect("some sku hashes elsewhere"))
    }

    #[test]
    fn an_order_and_a_product_live_where_fnv1a_of_their_id_says() {
        let shards = Shards::new(16);
        let (order, product) = (OrderId::parse("ord-42").unwrap(), sku("latte"));
        assert_eq!(shards.of_order(&order), super::super::partition::fnv1a(b"ord-42") % 16);
        assert_eq!(shards.of_sku(&product), super::super::partition::fnv1a(b"latte") % 16);
    }

    #[test]
    fn one_shard_holds_everything() {
        let shards = Shards::new(0);
        assert_eq!(shards.count(), 1, "no shards at all is one");
        let (a, b) = (sku("a"), sku("b"));
        assert_eq!(shards.of_lines([&a, &b]), Ok(Some(0)));
        assert_eq!(shards.order_id_on(0, counting()).map(|id| id.to_string()), Some("ord-1".into()));
    }

    #[test]
    fn given_lines_of_one_shard_when_placed_then_on_that_shard() {
        let shards = Shards::new(8);
        let first = sku("sku-0");
        let same: Vec<Sku> = (1..200)
            .map(|n| sku(&format!("sku-{n}")))
            .filter(|s| shards.of_sku(s) == shards.of_sku(&first))
            .take(3)
            .collect();
        assert_eq!(same.len(), 3);
        let lines = std::iter::once(&first).chain(&same);
        assert_eq!(shards.of_lines(lines), Ok(Some(shards.of_sku(&first))));
    }

    #[test]
    fn given_lines_on_two_shards_when_placed_then_refused_naming_both() {
        let shards = Shards::new(8);
        let (a, b) = apart(shards);
        let refused = shards.of_lines([&a, &a, &b]).unwrap_err().to_string();
        assert!(refused.contains(&format!("{a} on shard {}", shards.of_sku(&a))), "{refused}");
        assert!(refused.contains(&format!("{b} on shard {}", shards.of_sku(&b))), "{refused}");
        assert!(refused.contains("separate orders"), "{refused}");
    }

    #[test]
    fn given_no_lines_when_placed_then_any_shard_will_do() {
        assert_eq!(Shards::new(8).of_lines([]), Ok(None));
    }

    #[test]
    fn a_new_order_id_belongs_to_the_shard_that_made_it() {
        let shards = Shards::new(16);
        let mut make = counting();
        for shard in 0..16 {
            for _ in 0..5 {
                let id = shards.order_id_on(shard, &mut make).expect("found within the tries");
                assert_eq!(shards.of_order(&id), shard, "{id}");
            }
        }
    }

    #[test]
    fn an_id_maker_that_does_not_vary_is_given_up_on() {
        let shards = Shards::new(4);
        let fixed = OrderId::parse("ord-fixed").unwrap();
        let elsewhere = (shards.of_order(&fixed) + 1) % 4;
        let mut tries = 0;
        let made = shards.order_id_on(elsewhere, || {
            tries += 1;
            fixed.clone()
        });
        assert_eq!(made, None);
        assert_eq!(tries, 4 * TRIES_PER_SHARD, "bounded, not endless");
        assert_eq!(shards.order_id_on(4, counting()), None, "shard 4 of 4 does not exist");
    }
}
