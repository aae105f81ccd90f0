//! The delivery of one order along its workflow's legs, in order.
//!
//! A leg starts as soon as the one before it is done, or when someone starts
//! it explicitly (the overseas shipper); a checkpoint leg (customs) can
//! reject the goods. The delivery service's actor is a shell around this
//! fold: it opens a delivery when the order is placed ([`Delivery::open`]),
//! folds the order's facts in ([`Delivery::on_fact`]), and decides the
//! parties' commands ([`Delivery::decide`]).

use super::fold::{Fold, Refusal};
use super::{EventKind, LegSpec, OrderId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub order_id: OrderId,
    pub state: DeliveryStatus,
    pub legs: Vec<LegSpec>,
    /// The leg under way or next to start.
    pub current: u32,
    pub leg_state: LegState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// The order exists; it is not ready to be delivered yet.
    Awaiting,
    InProgress,
    Delivered,
    /// The order ended (canceled, rejected) or a checkpoint rejected it.
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LegState {
    /// Waits for an explicit start.
    Waiting,
    InTransit,
    Done,
}

/// What a party does to a leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegAct {
    Start,
    Complete,
    /// A checkpoint rejects the goods, with the reason.
    Reject(String),
}

/// A party's command: an act on a named (or numbered) leg, or on whichever
/// is current (`leg: None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegCommand {
    pub leg: Option<String>,
    pub act: LegAct,
    /// The principal that gives it, when one is known: recorded as an
    /// [`EventKind::Acted`].
    pub by: Option<String>,
}

impl Delivery {
    /// The delivery of a newly placed order: it waits for the order to ask.
    pub fn open(order_id: &OrderId) -> Delivery {
        Delivery {
            id: format!("dlv-{order_id}"),
            order_id: order_id.clone(),
            state: DeliveryStatus::Awaiting,
            legs: vec![],
            current: 0,
            leg_state: LegState::Waiting,
        }
    }

    /// The delivery as the order's events in the log make it: opened at
    /// its placing, each later event folded once; `None` before that. The
    /// stored delivery must always equal this (the crash tests check it).
    pub fn replay<'a>(
        order_id: &OrderId,
        events: impl IntoIterator<Item = &'a EventKind>,
    ) -> Option<Delivery> {
        let mut events = events.into_iter().skip_while(|e| !matches!(e, EventKind::OrderPlaced { .. }));
        events.next()?;
        let mut delivery = Delivery::open(order_id);
        delivery.apply_all(events);
        Some(delivery)
    }

    fn leg_name(&self) -> &str {
        self.legs.get(self.current as usize).map(|l| l.name.as_str()).unwrap_or("")
    }

    fn leg_fact(&self) -> (String, u32, String) {
        (self.id.clone(), self.current, self.leg_name().to_owned())
    }

    /// The events a party's command produces, or why it is refused. The
    /// caller folds them in with [`Delivery::advance`], which also starts
    /// the next leg where it starts by itself.
    pub fn decide(&self, command: &LegCommand) -> Result<Vec<EventKind>, Refusal> {
        self.check(command)?;
        let (delivery_id, leg, name) = self.leg_fact();
        let acted = command.by.as_ref().map(|by| {
            let act = match command.act {
                LegAct::Start => "start",
                LegAct::Complete => "complete",
                LegAct::Reject(_) => "reject",
            };
            EventKind::Acted { step: format!("{act} {name}"), by: by.clone() }
        });
        let mut events = match &command.act {
            LegAct::Start => vec![EventKind::LegStarted { delivery_id, leg, name }],
            LegAct::Reject(reason) => {
                vec![EventKind::LegRejected { delivery_id, leg, name, reason: reason.clone() }]
            }
            LegAct::Complete => {
                let last = self.current as usize + 1 == self.legs.len();
                let mut events =
                    vec![EventKind::LegCompleted { delivery_id: delivery_id.clone(), leg, name }];
                if last {
                    events.push(EventKind::DeliveryCompleted { delivery_id });
                }
                events
            }
        };
        events.extend(acted);
        Ok(events)
    }

    /// Refuses a command that does not fit the current leg.
    fn check(&self, command: &LegCommand) -> Result<(), Refusal> {
        let conflict =
            |why: String| Err(Refusal::NotAllowed(format!("the delivery of order {}: {why}", self.order_id)));
        match self.state {
            DeliveryStatus::InProgress => {}
            DeliveryStatus::Awaiting => return conflict("it has not started".into()),
            DeliveryStatus::Delivered => return conflict("it is delivered".into()),
            DeliveryStatus::Stopped => return conflict("it is stopped".into()),
        }
        if let Some(name) = &command.leg {
            let index = self.legs.iter().position(|l| &l.name == name).or_else(|| name.parse().ok());
            let index = index
                .filter(|i| *i < self.legs.len())
                .ok_or_else(|| Refusal::Unknown { what: "leg", id: name.clone() })?;
            if index != self.current as usize {
                return conflict(format!("leg {name} is not the current leg ({})", self.leg_name()));
            }
        }
        let current = self.leg_name().to_owned();
        match (&command.act, self.leg_state) {
            (LegAct::Start, LegState::Waiting) => Ok(()),
            (LegAct::Start, _) => conflict(format!("leg {current} has started")),
            (_, LegState::Waiting) => conflict(format!("leg {current} has not started")),
            (LegAct::Reject(_), _) if !self.legs[self.current as usize].checkpoint => {
                conflict(format!("leg {current} is not a checkpoint"))
            }
            _ => Ok(()),
        }
    }

    /// Folds `events` in, then starts the current leg if it waits and does
    /// not need an explicit start; returns every event, the start included.
    pub fn advance(&mut self, events: Vec<EventKind>) -> Vec<EventKind> {
        let mut all = events;
        self.apply_all(&all);
        if let Some(start) = self.due_start() {
            self.apply(&start);
            all.push(start);
        }
        all
    }

    /// The start of the current leg, when it starts by itself now.
    fn due_start(&self) -> Option<EventKind> {
        let leg = self.legs.get(self.current as usize)?;
        let waits = self.state == DeliveryStatus::InProgress && self.leg_state == LegState::Waiting;
        (waits && !leg.explicit_start).then(|| {
            let (delivery_id, leg, name) = self.leg_fact();
            EventKind::LegStarted { delivery_id, leg, name }
        })
    }

    /// Folds another service's fact about the order into its delivery (or
    /// opens it, for a placed order): the new state and the events that
    /// follow, or `None` when the fact changes nothing here. The delivery's
    /// own events are folded when decided, never here.
    pub fn on_fact(
        delivery: Option<Delivery>,
        order_id: &OrderId,
        fact: &EventKind,
    ) -> Option<(Delivery, Vec<EventKind>)> {
        match (fact, delivery) {
            (EventKind::OrderPlaced { .. }, None) => Some((Delivery::open(order_id), vec![])),
            (EventKind::DeliveryRequested { legs }, Some(mut d))
                if d.state == DeliveryStatus::Awaiting && !legs.is_empty() =>
            {
                let events = d.advance(vec![fact.clone()]);
                // The request is the order's event, not ours: only what
                // follows from it is appended.
                Some((d, events.into_iter().skip(1).collect()))
            }
            (kind, Some(mut d)) if kind.ends_order().is_some() && d.state != DeliveryStatus::Delivered => {
                d.apply(kind);
                Some((d, vec![]))
            }
            _ => None,
        }
    }
}

impl Fold for Delivery {
    fn apply(&mut self, event: &EventKind) {
        match event {
            EventKind::DeliveryRequested { legs }
                if self.state == DeliveryStatus::Awaiting && !legs.is_empty() =>
            {
                (self.state, self.legs, self.current, self.leg_state) =
                    (DeliveryStatus::InProgress, legs.clone(), 0, LegState::Waiting);
            }
            EventKind::LegStarted { .. } => self.leg_state = LegState::InTransit,
            EventKind::LegCompleted { .. } if self.current as usize + 1 >= self.legs.len() => {
                (self.state, self.leg_state) = (DeliveryStatus::Delivered, LegState::Done);
            }
            EventKind::LegCompleted { .. } => {
                self.current += 1;
                self.leg_state = LegState::Waiting;
            }
            EventKind::DeliveryCompleted { .. } => {
                (self.state, self.leg_state) = (DeliveryStatus::Delivered, LegState::Done);
            }
            EventKind::LegRejected { .. } => self.state = DeliveryStatus::Stopped,
            kind if kind.ends_order().is_some() && self.state != DeliveryStatus::Delivered => {
                self.state = DeliveryStatus::Stopped;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fold::testing::given;
    use crate::domain::CancelReason;

    fn leg(name: &str, checkpoint: bool, explicit_start: bool) -> LegSpec {
        LegSpec { name: name.into(), checkpoint, explicit_start }
    }

    fn opened() -> Delivery {
        Delivery::open(&OrderId::from_number(1))
    }

    fn requested(legs: Vec<LegSpec>) -> Delivery {
        let (d, _) = Delivery::on_fact(
            Some(opened()),
            &OrderId::from_number(1),
            &EventKind::DeliveryRequested { legs },
        )
        .expect("an awaiting delivery takes the request");
        d
    }

    fn malltail() -> Vec<LegSpec> {
        vec![leg("overseas", false, true), leg("customs", true, false), leg("domestic", false, false)]
    }

    fn cmd(leg: Option<&str>, act: LegAct) -> LegCommand {
        LegCommand { leg: leg.map(str::to_owned), act, by: None }
    }

    #[test]
    fn a_request_starts_the_first_leg_unless_it_waits_for_an_explicit_start() {
        let order = OrderId::from_number(1);
        let request = EventKind::DeliveryRequested { legs: vec![leg("ride", false, false)] };
        let (d, events) = Delivery::on_fact(Some(opened()), &order, &request).unwrap();
        assert_eq!((d.state, d.leg_state), (DeliveryStatus::InProgress, LegState::InTransit));
        assert_eq!(events.iter().map(EventKind::name).collect::<Vec<_>>(), ["leg_started"]);

        let request = EventKind::DeliveryRequested { legs: malltail() };
        let (d, events) = Delivery::on_fact(Some(opened()), &order, &request).unwrap();
        assert_eq!((d.leg_state, events.len()), (LegState::Waiting, 0), "overseas waits for its shipper");
        assert!(Delivery::on_fact(Some(d), &order, &request).is_none(), "a second request changes nothing");
    }

    #[test]
    fn nothing_can_be_done_to_a_delivery_that_has_not_started() {
        given(opened(), &[])
            .when(|d| d.decide(&cmd(None, LegAct::Complete)))
            .then_refused("it has not started");
    }

    #[test]
    fn legs_run_in_order_and_completing_the_last_completes_the_delivery() {
        let d = given(requested(malltail()), &[])
            .when(|d| d.decide(&cmd(None, LegAct::Complete)))
            .then_refused("overseas has not started");
        assert!(matches!(d, Refusal::NotAllowed(_)));
        given(requested(malltail()), &[])
            .when(|d| d.decide(&cmd(Some("customs"), LegAct::Start)))
            .then_refused("not the current leg");
        let mut d = given(requested(malltail()), &[])
            .when(|d| d.decide(&cmd(Some("overseas"), LegAct::Start)))
            .then_expect_names(&["leg_started"]);
        let events = d.advance(d.decide(&cmd(None, LegAct::Complete)).unwrap());
        let names: Vec<_> = events.iter().map(EventKind::name).collect();
        assert_eq!(names, ["leg_completed", "leg_started"], "customs starts by itself");
        assert_eq!((d.current, d.leg_state), (1, LegState::InTransit));
        d.advance(d.decide(&cmd(Some("1"), LegAct::Complete)).unwrap());
        let last = given(d, &[]).when(|d| d.decide(&cmd(None, LegAct::Complete)));
        let d = last.then_expect_names(&["leg_completed", "delivery_completed"]);
        assert_eq!((d.state, d.leg_state), (DeliveryStatus::Delivered, LegState::Done));
        given(d, &[]).when(|d| d.decide(&cmd(None, LegAct::Complete))).then_refused("it is delivered");
    }

    #[test]
    fn only_a_checkpoint_rejects_and_a_rejection_stops_the_delivery() {
        let mut d = requested(malltail());
        d.advance(d.decide(&cmd(None, LegAct::Start)).unwrap());
        given(d.clone(), &[])
            .when(|d| d.decide(&cmd(Some("overseas"), LegAct::Reject("x".into()))))
            .then_refused("not a checkpoint");
        d.advance(d.decide(&cmd(None, LegAct::Complete)).unwrap());
        let d = given(d, &[])
            .when(|d| d.decide(&cmd(Some("customs"), LegAct::Reject("forbidden goods".into()))))
            .then_expect_names(&["leg_rejected"]);
        assert_eq!(d.state, DeliveryStatus::Stopped);
    }

    #[test]
    fn an_unknown_leg_is_not_found() {
        let refused = given(requested(malltail()), &[])
            .when(|d| d.decide(&cmd(Some("air"), LegAct::Start)))
            .then_refused("leg air not found");
        assert_eq!(refused, Refusal::Unknown { what: "leg", id: "air".into() });
    }

    #[test]
    fn an_order_that_ends_stops_its_delivery_unless_it_was_delivered() {
        let canceled = EventKind::OrderCanceled { reason: CancelReason::CustomerRequest };
        let order = OrderId::from_number(1);
        let (d, events) = Delivery::on_fact(Some(requested(malltail())), &order, &canceled).unwrap();
        assert_eq!((d.state, events.len()), (DeliveryStatus::Stopped, 0));
        let delivered = given(requested(vec![leg("ride", false, false)]), &[]).then_delivered();
        assert!(Delivery::on_fact(Some(delivered), &order, &canceled).is_none());
    }

    trait ThenDelivered {
        fn then_delivered(self) -> Delivery;
    }

    impl ThenDelivered for crate::domain::fold::testing::Given<Delivery> {
        fn then_delivered(self) -> Delivery {
            let mut d = self.state;
            d.advance(d.decide(&cmd(None, LegAct::Complete)).unwrap());
            assert_eq!(d.state, DeliveryStatus::Delivered);
            d
        }
    }

    /// The delivery service's state is a fold of the log: a delivery taken
    /// through the overseas legs by the order's facts (as read) and the
    /// parties' commands (as written) equals what its events replay to.
    #[test]
    fn a_delivery_is_what_its_events_replay_to() {
        let order = OrderId::from_number(1);
        let placed = EventKind::OrderPlaced {
            customer: crate::domain::CustomerId::parse("kim").unwrap(),
            items: vec![],
            address: "Seoul".into(),
            payment: crate::domain::PaymentMethod::Card,
            total: crate::domain::Money::ZERO,
            workflow: "malltail".into(),
            reservation: crate::domain::ReservationMode::None,
            details: None,
            stay: None,
            lang: None,
        };
        let request = EventKind::DeliveryRequested { legs: malltail() };
        let mut log = vec![placed.clone(), request.clone()];
        let (mut d, _) = Delivery::on_fact(None, &order, &placed).unwrap();
        (d, _) = Delivery::on_fact(Some(d), &order, &request).unwrap();
        for act in [LegAct::Start, LegAct::Complete, LegAct::Reject("banned".into())] {
            let events = d.decide(&LegCommand { leg: None, act, by: Some("shipper".into()) }).unwrap();
            log.extend(d.advance(events));
        }
        assert_eq!(d.state, DeliveryStatus::Stopped);
        assert_eq!(Delivery::replay(&order, &log), Some(d));
        assert_eq!(Delivery::replay(&order, &log[1..]), None, "not before its order is placed");
    }
}
