use super::*;
use crate::domain::samples::{event, placed};
use crate::domain::Money;

fn kim() -> CustomerId {
    CustomerId::parse("kim").unwrap()
}

/// When `event` happens (after `cause`, if given), what kim is told.
fn told(event: &Event, telling: Telling<'_>, wording: Option<(&str, &str)>) -> Option<Notification> {
    Notification::for_event(event, &kim(), &telling, wording)
}

#[test]
fn notifications_are_made_for_status_changes_and_refunds_only() {
    let n = told(&placed(1), Telling::default(), None).unwrap();
    assert_eq!(n.status, OrderStatus::Placed);
    assert!(n.message.contains("ord-1"));
    let reserved = event(2, EventKind::StockReserved { lines: vec![], units: vec![] });
    assert!(told(&reserved, Telling::default(), None).is_none());
    let refunded = event(3, EventKind::PaymentRefunded { amount: Money::new(3000).unwrap() });
    assert!(told(&refunded, Telling::default(), None).is_some());
}

#[test]
fn a_deferred_card_payment_is_told_it_will_be_taken_not_asked_for_a_transfer() {
    let pending = event(2, EventKind::PaymentPending { amount: Money::new(300).unwrap() });
    let card = Telling { payment: Some(PaymentMethod::Card), ..Telling::default() };
    let card = told(&pending, card, None).unwrap();
    assert!(card.message.contains("card payment") && !card.message.contains("transfer"), "{}", card.message);
    let transfer = Telling { payment: Some(PaymentMethod::BankTransfer), ..Telling::default() };
    assert!(told(&pending, transfer, None).unwrap().message.contains("bank transfer"));
}

#[test]
fn given_a_cancel_then_its_refund_is_told_with_the_amount_and_the_reason() {
    let canceled = EventKind::OrderCanceled { reason: CancelReason::OutOfStock };
    let refund = event(5, EventKind::PaymentRefunded { amount: Money::new(3000).unwrap() });
    let after_cancel = Telling { cause: Some(&canceled), ..Telling::default() };

    let n = told(&refund, after_cancel, None).unwrap();
    assert_eq!(n.status, OrderStatus::Canceled, "the status the order ended at");
    assert_eq!(n.message, "Your payment of 3000 for order ord-1 was refunded (out of stock).");

    let korean = Telling { lang: "ko", ..after_cancel };
    let n = told(&refund, korean, Some(("주문 {order}: {amount}원 환불 ({reason})", "취소"))).unwrap();
    assert_eq!(n.message, "주문 ord-1: 3000원 환불 (재고 부족)");
}

#[test]
fn given_a_rejection_then_its_refund_gives_the_rejecters_words() {
    let rejected = EventKind::OrderRejected { by: "hotel".into(), reason: "fully booked".into() };
    let refund = event(4, EventKind::PaymentRefunded { amount: Money::new(100).unwrap() });
    let n = told(&refund, Telling { cause: Some(&rejected), ..Telling::default() }, None).unwrap();
    assert_eq!(
        (n.status, n.message.as_str()),
        (OrderStatus::Rejected, "Your payment of 100 for order ord-1 was refunded (fully booked).")
    );
    assert_eq!(
        subject(&EventKind::PaymentRefunded { amount: Money::new(1).unwrap() }, None).unwrap().1,
        REFUNDED
    );
}

#[test]
fn a_cancels_reason_is_words_in_the_messages_language_not_a_code() {
    let expired = event(3, EventKind::OrderCanceled { reason: CancelReason::Expired });
    let n = told(&expired, Telling::default(), None).unwrap();
    assert_eq!(n.message, "Order ord-1 was canceled (not paid in time).");
    let korean = Telling { lang: "ko", ..Telling::default() };
    let n = told(&expired, korean, Some(("주문 {order}이(가) 취소되었습니다 ({reason}).", "취소"))).unwrap();
    assert_eq!(n.message, "주문 ord-1이(가) 취소되었습니다 (기한 내 미결제).");
    // Every reason has words of its own in both languages.
    for lang in ["en", "ko"] {
        let reasons = [
            CancelReason::CustomerRequest,
            CancelReason::OutOfStock,
            CancelReason::PaymentDeclined,
            CancelReason::CheckpointRejected,
            CancelReason::Forfeited,
            CancelReason::SellerRequest,
            CancelReason::Expired,
        ];
        let mut words: Vec<&str> = reasons.iter().map(|r| reason_words(*r, lang)).collect();
        assert!(reasons.iter().all(|r| !words.contains(&r.as_str())), "{lang}: no raw code");
        words.sort_unstable();
        words.dedup();
        assert_eq!(words.len(), reasons.len(), "{lang}: distinct");
    }
}

#[test]
fn a_template_is_filled_in_and_one_with_an_unknown_placeholder_is_refused() {
    let accepted = event(2, EventKind::OrderAccepted { by: "Hotel Seoul".into() });
    let n = told(&accepted, Telling::default(), Some(("{order}: {label} by {by}", "confirmed"))).unwrap();
    assert_eq!(n.message, format!("{}: confirmed by Hotel Seoul", OrderId::from_number(1)));
    assert!(check_template("paid", "{order} {amount}").is_ok());
    assert!(check_template("paid", "{ordr}").unwrap_err().contains("{ordr} is not one of"));
    assert!(check_template("paid", "{order").unwrap_err().contains("not closed"));
    let empty = check_template("canceled", "room {units} is free").unwrap_err();
    assert_eq!(empty, "{units} is empty at canceled (it has {order}, {label}, {reason}, {why})");
    let mut wf = crate::domain::Workflow::shop();
    wf.messages.insert("ko".into(), [("shipped".to_owned(), "x".to_owned())].into());
    assert!(wf.check().unwrap_err().contains("not a status"));
    wf.messages.insert("ko".into(), [(REFUNDED.to_owned(), "{amount}".to_owned())].into());
    assert!(wf.check().is_ok(), "a refund has a template of its own");
    wf.messages.clear();
    wf.lang = "ko".into();
    assert!(wf.check().unwrap_err().contains("has no messages"));
}
