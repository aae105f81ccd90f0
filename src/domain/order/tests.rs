use super::*;
use crate::domain::workflow::LegSpec;
use crate::domain::Acceptance;

fn request(payment: &str) -> OrderRequest {
    OrderRequest {
        customer: "kim".into(),
        items: vec![ItemRequest { sku: "MUG".into(), qty: 2 }],
        address: "Seoul".into(),
        payment: payment.into(),
        card: Some("4111 1111 1111 1111".into()),
        ..OrderRequest::default()
    }
}

/// A hotel: card, rooms reserved after payment, the hotel accepts.
fn hotel() -> Workflow {
    Workflow {
        name: "hotel".into(),
        payment: vec![PaymentMethod::Card],
        acceptance: Acceptance::Party("hotel".into()),
        legs: vec![],
        receipt: false,
        cancel_until: OrderStatus::Accepted,
        ..Workflow::shop()
    }
}

/// Overseas purchase: no reservation, the shop accepts, four legs with a
/// customs checkpoint that forfeits.
fn malltail() -> Workflow {
    let leg =
        |name: &str, checkpoint, explicit_start| LegSpec { name: name.into(), checkpoint, explicit_start };
    Workflow {
        name: "malltail".into(),
        payment: vec![PaymentMethod::Card],
        reservation: ReservationMode::None,
        acceptance: Acceptance::Party("shop".into()),
        legs: vec![leg("overseas", false, true), leg("customs", true, false), leg("domestic", false, false)],
        rejected_checkpoint: CheckpointPolicy::Forfeit,
        receipt: false,
        cancel_until: OrderStatus::Accepted,
        ..Workflow::shop()
    }
}

fn place_in(payment: &str, wf: &Workflow) -> (Order, Vec<EventKind>) {
    let valid = request(payment).validate(wf).unwrap();
    let settlement = match valid.payment {
        PaymentMethod::BankTransfer => Settlement::Pending,
        PaymentMethod::None => Settlement::NotNeeded,
        PaymentMethod::Card => Settlement::Paid("pay-1".into()),
    };
    let id = OrderId::from_number(1);
    Order::place(&id, &valid, &[Money::new(1500).unwrap()], settlement, None, wf).unwrap()
}

fn placed(payment: &str) -> Order {
    place_in(payment, &Workflow::shop()).0
}

fn with_status(status: OrderStatus) -> Order {
    let mut o = placed("bank_transfer");
    o.status = status;
    o
}

fn names(events: &[EventKind]) -> Vec<&'static str> {
    events.iter().map(EventKind::name).collect()
}

#[test]
fn bank_transfer_waits_for_payment_and_card_is_paid_at_once() {
    let bank = placed("bank_transfer");
    assert_eq!(bank.status, OrderStatus::PaymentPending);
    assert_eq!(bank.total.minor(), 3000);
    let card = placed("card");
    assert_eq!(card.status, OrderStatus::Paid);
    assert_eq!(card.payment_id.as_deref(), Some("pay-1"));
}

#[test]
fn validation_names_the_broken_field() {
    let shop = Workflow::shop();
    let mut r = request("card");
    r.items[0].qty = 0;
    assert!(r.validate(&shop).unwrap_err().0.contains("qty must be at least 1"));
    r.items[0].qty = -3;
    assert!(r.validate(&shop).is_err());
    let mut r = request("cash");
    r.card = None;
    assert!(r.validate(&shop).unwrap_err().0.contains("payment must be one of"));
    let mut r = request("card");
    r.card = None;
    assert!(r.validate(&shop).unwrap_err().0.contains("card number"));
    let mut r = request("card");
    r.items.push(ItemRequest { sku: "MUG".into(), qty: 1 });
    assert!(r.validate(&shop).unwrap_err().0.contains("listed twice"));
    let mut r = request("card");
    r.items.clear();
    assert!(r.validate(&shop).is_err(), "a shop order needs items");
    let mut r = request("card");
    r.address = " ".into();
    assert!(r.validate(&shop).is_err());
    assert!(request("none").validate(&shop).unwrap_err().0.contains("takes payment bank_transfer or card"));
}

#[test]
fn a_workflow_that_reserves_nothing_takes_orders_without_items() {
    let mut taxi = malltail();
    taxi.payment = vec![PaymentMethod::None];
    let mut r = request("none");
    r.items.clear();
    assert!(r.validate(&taxi).unwrap().lines.is_empty());
}

#[test]
fn deposit_is_confirmed_only_while_pending() {
    let wf = Workflow::shop();
    for status in OrderStatus::ALL {
        let result = with_status(status).decide(&Command::ConfirmDeposit, &wf);
        assert_eq!(result.is_ok(), status == OrderStatus::PaymentPending, "{status}");
    }
}

#[test]
fn shop_cancel_is_allowed_only_before_the_deposit_is_confirmed() {
    let wf = Workflow::shop();
    for status in OrderStatus::ALL {
        let result = with_status(status).decide(&Command::Cancel, &wf);
        let allowed = matches!(status, OrderStatus::Placed | OrderStatus::PaymentPending);
        assert_eq!(result.is_ok(), allowed, "{status}");
    }
    let err = with_status(OrderStatus::Paid).decide(&Command::Cancel, &wf).unwrap_err();
    assert!(err.to_string().contains("only until payment_pending"), "{err}");
}

#[test]
fn a_deferred_card_payment_is_taken_automatically_not_confirmed() {
    let wf = Workflow::shop();
    let mut order = placed("card");
    order.status = OrderStatus::PaymentPending;
    assert!(order
        .decide(&Command::ConfirmDeposit, &wf)
        .unwrap_err()
        .to_string()
        .contains("taken automatically"));
    let captured = EventKind::PaymentCaptured { payment_id: "p".into(), amount: order.total };
    assert!(matches!(order.react(&captured, &wf)[..], [EventKind::OrderPaid { .. }]));
    let failed = EventKind::PaymentFailed { reason: "declined".into() };
    assert_eq!(
        order.react(&failed, &wf),
        vec![EventKind::OrderCanceled { reason: CancelReason::PaymentDeclined }]
    );
}

#[test]
fn the_seller_cancels_until_the_workflow_says_and_not_at_all_where_it_says_nothing() {
    let wf = Workflow::shop();
    let canceled = EventKind::OrderCanceled { reason: CancelReason::SellerRequest };
    assert_eq!(with_status(OrderStatus::InDelivery).decide(&Command::SellerCancel, &wf), Ok(vec![canceled]));
    let late = with_status(OrderStatus::Delivered).decide(&Command::SellerCancel, &wf).unwrap_err();
    assert!(late.to_string().contains("only until in_delivery"), "{late}");
    let nobody = Workflow { seller_cancel_until: None, ..Workflow::shop() };
    let refused = with_status(OrderStatus::Paid).decide(&Command::SellerCancel, &nobody).unwrap_err();
    assert!(refused.to_string().contains("sellers do not cancel"), "{refused}");
    assert!(CancelReason::SellerRequest.refunds());
}

#[test]
fn receipt_is_confirmed_only_when_delivered() {
    let wf = Workflow::shop();
    for status in OrderStatus::ALL {
        let result = with_status(status).decide(&Command::ConfirmReceipt, &wf);
        assert_eq!(result.is_ok(), status == OrderStatus::Delivered, "{status}");
    }
}

#[test]
fn once_reserved_an_automatically_accepted_order_asks_for_delivery() {
    let wf = Workflow::shop();
    let mut paid = with_status(OrderStatus::Paid);
    let reserved = EventKind::StockReserved { lines: vec![], units: vec![] };
    let next = paid.react(&reserved, &wf);
    assert_eq!(names(&paid.advance(next, &wf)), ["order_reserved", "delivery_requested"]);
    assert!(paid.delivery_requested);
    assert!(paid.advance(vec![], &wf).is_empty(), "asked once");
}

#[test]
fn a_party_accepts_exactly_once_and_the_loser_is_told_it_is_taken() {
    let wf = hotel();
    let (mut booking, events) = place_in("card", &wf);
    assert_eq!(names(&events), ["order_placed", "order_paid"]);
    let refused = booking.decide(&Command::Accept { by: "hotel".into() }, &wf).unwrap_err();
    assert!(matches!(refused, Refusal::NotAllowed(_)), "not reserved yet: {refused}");
    let next = booking.react(&EventKind::StockReserved { lines: vec![], units: vec![] }, &wf);
    assert_eq!(names(&booking.advance(next, &wf)), ["order_reserved"], "the hotel must accept first");
    let accept = Command::Accept { by: "Grand Hotel".into() };
    let events = booking.decide(&accept, &wf).unwrap();
    assert_eq!(names(&booking.advance(events, &wf)), ["order_accepted"], "no legs: nothing to deliver");
    assert_eq!(booking.accepted_by.as_deref(), Some("Grand Hotel"));
    for again in [accept, Command::Reject { by: "other".into(), reason: "full".into() }] {
        assert!(matches!(booking.decide(&again, &wf), Err(Refusal::Taken(_))));
    }
    assert!(booking.decide(&Command::Cancel, &wf).is_ok(), "a confirmed booking may still be canceled");
}

#[test]
fn the_shop_does_not_accept_by_hand() {
    let err =
        with_status(OrderStatus::Reserved).decide(&Command::Accept { by: "x".into() }, &Workflow::shop());
    assert!(err.unwrap_err().to_string().contains("accepted automatically"));
}

#[test]
fn legs_move_the_order_along_and_a_rejected_checkpoint_follows_the_policy() {
    let wf = malltail();
    let (mut order, _) = place_in("card", &wf);
    assert!(order.ready_for_acceptance(&wf), "nothing to reserve: paid is enough");
    let events = order.decide(&Command::Accept { by: "shop".into() }, &wf).unwrap();
    assert_eq!(names(&order.advance(events, &wf)), ["order_accepted", "delivery_requested"]);
    let leg = |leg, name: &str| EventKind::LegStarted { delivery_id: "d".into(), leg, name: name.into() };
    for (i, name) in ["overseas", "customs"].into_iter().enumerate() {
        let next = order.react(&leg(i as u32, name), &wf);
        assert_eq!(names(&order.advance(next, &wf)), ["order_in_delivery"]);
    }
    assert!(order.react(&leg(0, "overseas"), &wf).is_empty(), "an old leg does not come back");
    assert!(order.decide(&Command::Cancel, &wf).is_err(), "no cancel once shipping started");
    let rejected = EventKind::LegRejected {
        delivery_id: "d".into(),
        leg: 1,
        name: "customs".into(),
        reason: "x".into(),
    };
    assert_eq!(
        order.react(&rejected, &wf),
        vec![EventKind::OrderCanceled { reason: CancelReason::Forfeited }]
    );
    let refund = Workflow { rejected_checkpoint: CheckpointPolicy::Refund, ..wf };
    assert_eq!(
        order.react(&rejected, &refund),
        vec![EventKind::OrderCanceled { reason: CancelReason::CheckpointRejected }]
    );
}

#[test]
fn delivery_completion_closes_unless_receipt_is_needed() {
    let wf = Workflow::shop();
    let done = EventKind::DeliveryCompleted { delivery_id: "d".into() };
    assert_eq!(with_status(OrderStatus::InDelivery).react(&done, &wf), vec![EventKind::OrderDelivered]);
    let no_receipt = Workflow { receipt: false, ..Workflow::shop() };
    assert_eq!(
        with_status(OrderStatus::InDelivery).react(&done, &no_receipt),
        vec![EventKind::OrderDelivered, EventKind::OrderClosed]
    );
}

#[test]
fn facts_arriving_too_late_change_nothing() {
    let wf = Workflow::shop();
    let reserved = EventKind::StockReserved { lines: vec![], units: vec![] };
    assert!(with_status(OrderStatus::Canceled).react(&reserved, &wf).is_empty());
    assert!(with_status(OrderStatus::InDelivery).react(&reserved, &wf).is_empty());
}

/// A taxi call: no payment, no reservation, drivers accept, a decline
/// keeps the call open.
fn taxi() -> Workflow {
    Workflow {
        name: "taxi".into(),
        payment: vec![PaymentMethod::None],
        reservation: ReservationMode::None,
        acceptance: Acceptance::Party("driver".into()),
        decline: crate::domain::Decline::KeepsOpen,
        max_active_per_party: Some(1),
        receipt: false,
        cancel_until: OrderStatus::Accepted,
        ..Workflow::shop()
    }
}

fn open_call() -> Order {
    place_call().0
}

fn place_call() -> (Order, Vec<EventKind>) {
    let mut r = request("none");
    r.items.clear();
    r.workflow = Some("taxi".into());
    let valid = r.validate(&taxi()).unwrap();
    Order::place(&OrderId::from_number(1), &valid, &[], Settlement::NotNeeded, None, &taxi()).unwrap()
}

#[test]
fn given_an_open_call_when_a_driver_declines_then_it_stays_open_and_he_is_not_offered_it_again() {
    use crate::domain::fold::testing::given;
    let reject = |by: &str| Command::Reject { by: by.into(), reason: "too far".into() };
    let declined = given(open_call(), &[])
        .when(|o| o.decide(&reject("kim"), &taxi()))
        .then_expect(&[EventKind::OrderDeclined { by: "kim".into(), reason: "too far".into() }]);
    assert_eq!((declined.status, declined.declined.clone()), (OrderStatus::Placed, vec!["kim".to_owned()]));
    given(declined.clone(), &[])
        .when(|o| o.decide(&Command::Accept { by: "kim".into() }, &taxi()))
        .then_refused("kim declined it");
    given(declined.clone(), &[]).when(|o| o.decide(&reject("kim"), &taxi())).then_refused("kim declined it");
    given(declined, &[])
        .when(|o| o.decide(&Command::Accept { by: "lee".into() }, &taxi()))
        .then_expect(&[EventKind::OrderAccepted { by: "lee".into() }]);
}

#[test]
fn given_a_workflow_whose_decline_ends_the_order_when_the_party_declines_then_it_is_rejected() {
    use crate::domain::fold::testing::given;
    let (hotel_order, _) = place_in("card", &hotel());
    let reserved = given(hotel_order, &[EventKind::OrderReserved { units: vec![] }]).state;
    given(reserved, &[])
        .when(|o| o.decide(&Command::Reject { by: "hotel".into(), reason: "renovation".into() }, &hotel()))
        .then_expect(&[EventKind::OrderRejected { by: "hotel".into(), reason: "renovation".into() }]);
}

#[test]
fn details_and_dates_are_kept_with_the_order_and_its_placing_event() {
    let mut booking = hotel();
    booking.dated = true;
    booking.reservation = ReservationMode::AtPlacement;
    let mut r = request("card");
    r.details = Some(serde_json::json!({"guests": 3}).as_object().unwrap().clone());
    r.from = Some("2027-03-01".into());
    r.to = Some("2027-03-03".into());
    let valid = r.validate(&booking).unwrap();
    let price = [Money::new(1500).unwrap()];
    let (order, events) =
        Order::place(&OrderId::from_number(1), &valid, &price, Settlement::Paid("p".into()), None, &booking)
            .unwrap();
    assert_eq!(order.stay.map(|s| s.from()), Some("2027-03-01".to_owned()));
    assert_eq!(order.details.as_ref().map(|d| d.to_json()), Some(serde_json::json!({"guests": 3})));
    assert!(matches!(&events[0], EventKind::OrderPlaced { stay: Some(_), details: Some(_), .. }));
    let mut undated = r.clone();
    undated.from = None;
    assert!(undated.validate(&booking).unwrap_err().0.contains("give from and to"));
    assert!(r.validate(&hotel()).unwrap_err().0.contains("does not book dates"));
}

/// The order service's state is a fold of the log: an order taken through
/// its life by decisions and other services' facts, as the actor does
/// (its own events applied as written, facts applied as read), equals the
/// order its events replay to. A decline is recorded once.
#[test]
fn an_order_is_what_its_events_replay_to() {
    let wf = malltail();
    let (mut order, mut log) = place_in("card", &wf);
    let decided = |order: &mut Order, events: Vec<EventKind>, log: &mut Vec<EventKind>| {
        log.extend(order.advance(events, &wf));
    };
    let accept = order.decide(&Command::Accept { by: "shop".into() }, &wf).unwrap();
    decided(&mut order, accept, &mut log);
    for fact in [
        EventKind::LegStarted { delivery_id: "d".into(), leg: 0, name: "overseas".into() },
        EventKind::LegRejected {
            delivery_id: "d".into(),
            leg: 1,
            name: "customs".into(),
            reason: "banned".into(),
        },
    ] {
        log.push(fact.clone());
        order.apply(&fact);
        let next = order.react(&fact, &wf);
        decided(&mut order, next, &mut log);
    }
    assert_eq!(order.status, OrderStatus::Canceled);
    // Facts that come before the placing (stock taken for a booking that
    // was then never written) are not the order's.
    let before = [EventKind::StockReleased { lines: vec![] }];
    assert_eq!(Order::replay(&order.id, before.iter().chain(&log)), Some(order.clone()));
    assert_eq!(Order::replay(&order.id, &before), None);

    let (mut call, mut log) = place_call();
    for by in ["kim", "lee"] {
        let declined =
            call.decide(&Command::Reject { by: by.into(), reason: "too far".into() }, &taxi()).unwrap();
        log.extend(call.advance(declined, &taxi()));
    }
    assert_eq!(call.declined, ["kim", "lee"]);
    assert_eq!(Order::replay(&call.id, &log), Some(call));
}
