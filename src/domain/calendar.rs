//! The calendar of a dated pool (hotel rooms): which unit is booked by
//! which order for which dates.
//!
//! In a dated pool a unit never leaves the pool: it is booked for a range,
//! and is free for any range that does not overlap one of its bookings. A
//! booking goes when its order ends or its stay is over (check-out), so a
//! room is free again for every later date at once.

use super::stay::Stay;
use super::OrderId;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Calendar {
    pub bookings: Vec<Booking>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    pub unit: String,
    pub stay: Stay,
    pub order: OrderId,
}

impl Calendar {
    /// Whether `unit` has no booking that overlaps `stay`.
    pub fn is_free(&self, unit: &str, stay: &Stay) -> bool {
        !self.bookings.iter().any(|b| b.unit == unit && b.stay.overlaps(stay))
    }

    /// The units of `pool` free for the whole of `stay`, in pool order.
    pub fn free<'a>(&self, pool: &'a [String], stay: &Stay) -> Vec<&'a String> {
        pool.iter().filter(|u| self.is_free(u, stay)).collect()
    }

    /// Books `qty` units of `pool` for `stay` for `order`: the units, or
    /// how many were free when that is fewer.
    pub fn book(
        &mut self,
        pool: &[String],
        qty: u32,
        stay: &Stay,
        order: &OrderId,
    ) -> Result<Vec<String>, u64> {
        let free = self.free(pool, stay);
        if free.len() < qty as usize {
            return Err(free.len() as u64);
        }
        let units: Vec<String> = free.into_iter().take(qty as usize).cloned().collect();
        for unit in &units {
            self.bookings.push(Booking { unit: unit.clone(), stay: *stay, order: order.clone() });
        }
        Ok(units)
    }

    /// Removes `order`'s bookings; whether it had any.
    pub fn cancel(&mut self, order: &OrderId) -> bool {
        let before = self.bookings.len();
        self.bookings.retain(|b| b.order != *order);
        self.bookings.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stay(from: &str, to: &str) -> Stay {
        Stay::parse(from, to).unwrap()
    }

    fn rooms() -> Vec<String> {
        vec!["r101".into()]
    }

    #[test]
    fn one_room_takes_two_stays_that_do_not_overlap_and_never_two_that_do() {
        let mut c = Calendar::default();
        let march = stay("2027-03-01", "2027-03-03");
        let may = stay("2027-05-01", "2027-05-02");
        assert_eq!(c.book(&rooms(), 1, &march, &OrderId::from_number(1)), Ok(vec!["r101".to_owned()]));
        assert_eq!(c.book(&rooms(), 1, &may, &OrderId::from_number(2)), Ok(vec!["r101".to_owned()]));
        let overlapping = stay("2027-03-02", "2027-03-04");
        assert_eq!(c.book(&rooms(), 1, &overlapping, &OrderId::from_number(3)), Err(0));
        let back_to_back = stay("2027-03-03", "2027-03-04");
        assert!(c.book(&rooms(), 1, &back_to_back, &OrderId::from_number(4)).is_ok());
    }

    #[test]
    fn a_canceled_or_ended_booking_frees_its_dates_at_once() {
        let mut c = Calendar::default();
        let march = stay("2027-03-01", "2027-03-03");
        c.book(&rooms(), 1, &march, &OrderId::from_number(1)).unwrap();
        assert!(c.free(&rooms(), &march).is_empty());
        assert!(c.cancel(&OrderId::from_number(1)));
        assert!(!c.cancel(&OrderId::from_number(1)), "once");
        assert_eq!(c.free(&rooms(), &march), [&"r101".to_owned()]);
    }
}
