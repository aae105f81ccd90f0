//! `GET /workflows`: what a party or a console needs to know of each
//! workflow: its statuses in its own words and who takes each step.

use crate::helpers::spawn_app;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn the_workflows_say_their_statuses_in_their_words_and_who_takes_each_step() {
    let app = spawn_app().await;
    let r = app.get("/workflows").await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let all = body["workflows"].as_array().unwrap();
    let names: Vec<&str> = all.iter().map(|w| w["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["driver", "hotel", "malltail", "shop", "taxi"]);
    assert!(all.iter().all(|w| w["listed"] == true), "an open node lists everything");
    let named = |name: &str| all.iter().find(|w| w["name"] == name).unwrap().clone();

    let shop = named("shop");
    assert_eq!(shop["default"], true);
    assert_eq!(shop["confirms_deposit"], "seller");
    assert_eq!(shop["acceptance"], Value::Null);
    assert_eq!(shop["statuses"].as_array().unwrap().len(), 10);

    let hotel = named("hotel");
    assert_eq!(hotel["default"], false);
    assert_eq!(hotel["acceptance"], "hotel");
    assert_eq!(hotel["dated"], true);
    assert_eq!(hotel["confirms_deposit"], Value::Null, "the hotel takes cards only");
    let label = |w: &Value, status: &str| {
        w["statuses"].as_array().unwrap().iter().find(|s| s["status"] == status).unwrap()["label"].clone()
    };
    assert_eq!(label(&hotel, "reserved"), "awaiting hotel confirmation");
    assert_eq!(label(&hotel, "paid"), "paid", "a status it does not rename keeps its name");

    let malltail = named("malltail");
    let customs =
        malltail["legs"].as_array().unwrap().iter().find(|l| l["name"] == "customs").unwrap().clone();
    assert_eq!(customs["party"], "customs");
    assert_eq!(customs["checkpoint"], true);
    let overseas = &malltail["legs"][0];
    assert_eq!(
        (overseas["party"].as_str(), overseas["explicit_start"].as_bool()),
        (Some("shop"), Some(true))
    );
}

#[tokio::test]
async fn each_caller_is_told_which_workflows_it_may_list() {
    let app = crate::auth::protected().await;
    let listed = |body: Value| -> Vec<String> {
        let all = body["workflows"].as_array().unwrap().clone();
        all.iter().filter(|w| w["listed"] == true).map(|w| w["name"].as_str().unwrap().to_owned()).collect()
    };
    let as_key = |key: &'static str| {
        let (client, url) = (app.client.clone(), app.url("/workflows"));
        async move { client.get(url).bearer_auth(key).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    assert_eq!(listed(as_key("hotel-key").await), ["hotel"]);
    assert_eq!(listed(as_key("d1-key").await), ["driver", "taxi"]);
    assert_eq!(listed(as_key("op-key").await).len(), 5);
    assert!(listed(as_key("kim-key").await).is_empty(), "a customer lists only their own orders");
    let r = app.client.get(app.url("/workflows")).bearer_auth("nobody").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
