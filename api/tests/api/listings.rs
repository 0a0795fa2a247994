//! Listings: who may create and change them, validation, pagination, filters, ordering.

use reqwest::StatusCode;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, assert_problem, fields, spawn_app};

#[tokio::test]
async fn a_provider_creates_a_listing_with_every_seat_free() {
    let app = spawn_app().await;
    let provider = app.register("provider").await;
    let listing = app.create_listing(&provider, json!({"capacity": 12})).await;
    assert_eq!(listing["provider_id"], provider.id.to_string());
    assert_eq!(listing["capacity"], 12);
    assert_eq!(listing["seats_left"], 12);
    assert_eq!(listing["status"], "published");
    assert_eq!(listing["currency"], "eur");
    let fetched = app
        .get_json(
            &format!("/api/v1/listings/{}", listing["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(fetched, listing);
}

#[tokio::test]
async fn customers_and_strangers_cannot_create_listings() {
    let app = spawn_app().await;
    let customer = app.register("customer").await;
    let body = app.listing_body(json!({}));
    assert_problem(
        app.post_json("/api/v1/listings", &body, Some(&customer.access))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_problem(
        app.post_json("/api/v1/listings", &body, None).await,
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
    )
    .await;
    assert_eq!(app.count("listings").await, 0);
}

#[tokio::test]
async fn invalid_listings_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let provider = app.register("provider").await;
    let cases = [
        (json!({"starts_at": "2001-01-01T00:00:00Z"}), "starts_at"),
        (json!({"starts_at": "tomorrow"}), "starts_at"),
        (json!({"currency": "EUR"}), "currency"),
        (json!({"capacity": 0}), "capacity"),
        (json!({"capacity": "10"}), "capacity"),
        (json!({"price_cents": -1}), "price_cents"),
        (json!({"title": ""}), "title"),
        (json!({"seats_left": 3}), "seats_left"),
    ];
    for (changes, field) in cases {
        let body = app.listing_body(changes.clone());
        let problem = assert_problem(
            app.post_json("/api/v1/listings", &body, Some(&provider.access))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(fields(&problem), [field], "{changes}");
    }
    let mut missing = app.listing_body(json!({}));
    missing.as_object_mut().unwrap().remove("price_cents");
    let problem = assert_problem(
        app.post_json("/api/v1/listings", &missing, Some(&provider.access))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(fields(&problem), ["price_cents"]);
    assert_eq!(app.count("listings").await, 0);
}

#[tokio::test]
async fn an_unknown_or_malformed_listing_id_is_404() {
    let app = spawn_app().await;
    let unknown = format!("/api/v1/listings/{}", uuid::Uuid::new_v4());
    assert_problem(
        app.get(&unknown, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_problem(
        app.get("/api/v1/listings/42", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn five_listings(app: &TestApp, provider: &TestUser) -> Vec<Value> {
    let mut out = Vec::new();
    for (i, price) in [3000, 1000, 5000, 2000, 4000].into_iter().enumerate() {
        let starts = chrono::Utc::now() + chrono::Duration::days(10 + i as i64);
        out.push(
            app.create_listing(provider, json!({"title": format!("Event {i}"), "price_cents": price, "starts_at": starts.to_rfc3339()}))
                .await,
        );
    }
    out
}

#[tokio::test]
async fn pages_link_to_their_neighbours_and_keep_the_filters() {
    let app = spawn_app().await;
    let provider = app.register("provider").await;
    five_listings(&app, &provider).await;

    let first = app
        .get_json("/api/v1/listings?page_size=2&search=event", None)
        .await;
    assert_eq!(first["count"], 5);
    assert_eq!(first["results"].as_array().unwrap().len(), 2);
    assert!(first["previous"].is_null());
    let next = first["next"].as_str().unwrap();
    assert!(
        next.contains("page=2") && next.contains("search=event") && next.contains("page_size=2"),
        "{next}"
    );

    let last: Value = app
        .client
        .get(next.replace("page=2", "page=3"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(last["results"].as_array().unwrap().len(), 1);
    assert!(last["next"].is_null());
    assert!(last["previous"].as_str().unwrap().contains("page=2"));

    let beyond = app
        .get_json("/api/v1/listings?page=9&page_size=2", None)
        .await;
    assert_eq!(beyond["count"], 5);
    assert_eq!(beyond["results"].as_array().unwrap().len(), 0);
    assert!(beyond["next"].is_null());
}

#[tokio::test]
async fn a_forged_forwarded_host_makes_page_links_relative_instead_of_dropping_the_request() {
    let app = spawn_app().await;
    let provider = app.register("provider").await;
    five_listings(&app, &provider).await;
    let page = |forwarded_host: &'static str| {
        app.client
            .get(app.url("/api/v1/listings?page=2&page_size=2&search=event"))
            .header("x-forwarded-host", forwarded_host)
            .send()
    };
    for forged in ["a b", "127.0.0.1:99999"] {
        let resp = page(forged).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{forged}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["results"].as_array().unwrap().len(), 2, "{body}");
        assert_eq!(
            body["previous"], "/api/v1/listings?page_size=2&search=event&page=1",
            "{forged}: {body}"
        );
        assert_eq!(
            body["next"], "/api/v1/listings?page_size=2&search=event&page=3",
            "{forged}: {body}"
        );
    }
    // A host that makes a URL still gives absolute links.
    let body: Value = page("shop.example").await.unwrap().json().await.unwrap();
    assert_eq!(
        body["next"], "http://shop.example/api/v1/listings?page_size=2&search=event&page=3",
        "{body}"
    );
}

#[tokio::test]
async fn page_parameters_out_of_range_are_422() {
    let app = spawn_app().await;
    for (query, field) in [
        ("page=0", "page"),
        ("page_size=101", "page_size"),
        ("page_size=0", "page_size"),
        ("page=abc", "page"),
        ("ordering=title", "ordering"),
        ("starts_after=yesterday", "starts_after"),
        ("provider_id=nope", "provider_id"),
    ] {
        let problem = assert_problem(
            app.get(&format!("/api/v1/listings?{query}"), None).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(fields(&problem), [field], "{query}");
    }
}

#[tokio::test]
async fn listings_can_be_filtered_and_ordered() {
    let app = spawn_app().await;
    let provider = app.register("provider").await;
    let other = app.register("provider").await;
    let mine = five_listings(&app, &provider).await;
    app.create_listing(
        &other,
        json!({"title": "Kayak trip", "description": "Paddle 100% of the way"}),
    )
    .await;

    let by_price = app
        .get_json("/api/v1/listings?ordering=-price_cents&search=event", None)
        .await;
    let prices: Vec<i64> = by_price["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["price_cents"].as_i64().unwrap())
        .collect();
    assert_eq!(prices, [5000, 4000, 3000, 2000, 1000]);

    let by_start = app
        .get_json("/api/v1/listings?ordering=-starts_at", None)
        .await;
    let starts: Vec<String> = by_start["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["starts_at"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = starts.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(starts, sorted);

    let theirs = app
        .get_json(&format!("/api/v1/listings?provider_id={}", other.id), None)
        .await;
    assert_eq!(theirs["count"], 1);
    let found = app.get_json("/api/v1/listings?search=KAYAK", None).await;
    assert_eq!(found["count"], 1);
    let percent = app.get_json("/api/v1/listings?search=100%25", None).await;
    assert_eq!(percent["count"], 1, "a % in the search matches itself");

    let third_start = mine[2]["starts_at"].as_str().unwrap();
    let window: Value = app
        .client
        .get(app.url("/api/v1/listings"))
        .query(&[("starts_after", third_start), ("search", "event")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(window["count"], 3);
    let before: Value = app
        .client
        .get(app.url("/api/v1/listings"))
        .query(&[("starts_before", third_start)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before["count"], 2);
}

#[tokio::test]
async fn the_owner_patches_a_listing_and_others_get_403() {
    let app = spawn_app().await;
    let owner = app.register("provider").await;
    let rival = app.register("provider").await;
    let customer = app.register("customer").await;
    let listing = app.create_listing(&owner, json!({})).await;
    let path = format!("/api/v1/listings/{}", listing["id"].as_str().unwrap());

    for intruder in [&rival, &customer] {
        let resp = app
            .patch_json(&path, &json!({"title": "Mine now"}), Some(&intruder.access))
            .await;
        assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let unchanged = app.get_json(&path, None).await;
    assert_eq!(unchanged["title"], listing["title"]);

    let resp = app
        .patch_json(
            &path,
            &json!({"title": "Evening pottery", "price_cents": 3000}),
            Some(&owner.access),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let patched: Value = resp.json().await.unwrap();
    assert_eq!(patched["title"], "Evening pottery");
    assert_eq!(patched["price_cents"], 3000);
    assert_eq!(patched["description"], listing["description"]);

    let admin = app.admin().await;
    let resp = app
        .patch_json(
            &path,
            &json!({"description": "Changed by an admin"}),
            Some(&admin.access),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_null_description_clears_it_and_an_absent_one_keeps_it() {
    let app = spawn_app().await;
    let owner = app.register("provider").await;
    let listing = app
        .create_listing(&owner, json!({"description": "Bring an apron"}))
        .await;
    let path = format!("/api/v1/listings/{}", listing["id"].as_str().unwrap());
    assert_eq!(listing["description"], "Bring an apron");

    let kept: Value = app
        .patch_json(&path, &json!({"title": "Pottery"}), Some(&owner.access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(kept["description"], "Bring an apron");

    let resp = app
        .patch_json(&path, &json!({"description": null}), Some(&owner.access))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let cleared: Value = resp.json().await.unwrap();
    assert_eq!(cleared["description"], "");
    assert_eq!(app.get_json(&path, None).await["description"], "");

    let too_long = "x".repeat(10_001);
    let resp = app
        .patch_json(
            &path,
            &json!({"description": too_long}),
            Some(&owner.access),
        )
        .await;
    let problem = assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(fields(&problem), ["description"]);
}

#[tokio::test]
async fn capacity_cannot_drop_below_the_seats_already_booked() {
    let app = spawn_app().await;
    let owner = app.register("provider").await;
    let listing = app.create_listing(&owner, json!({"capacity": 10})).await;
    let id = listing["id"].as_str().unwrap();
    // Six seats held by bookings (the bookings API arrives with the job pipeline).
    app.db
        .execute_unprepared(&format!(
            "UPDATE listings SET seats_left = 4 WHERE id = '{id}'"
        ))
        .await
        .unwrap();
    let path = format!("/api/v1/listings/{id}");

    let resp = app
        .patch_json(&path, &json!({"capacity": 5}), Some(&owner.access))
        .await;
    assert_problem(resp, StatusCode::CONFLICT, "conflict").await;
    let same = app.get_json(&path, None).await;
    assert_eq!(
        (same["capacity"].as_i64(), same["seats_left"].as_i64()),
        (Some(10), Some(4))
    );

    let grown: Value = app
        .patch_json(&path, &json!({"capacity": 8}), Some(&owner.access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (grown["capacity"].as_i64(), grown["seats_left"].as_i64()),
        (Some(8), Some(2))
    );
}

#[tokio::test]
async fn a_patch_with_unknown_or_invalid_fields_changes_nothing() {
    let app = spawn_app().await;
    let owner = app.register("provider").await;
    let listing = app.create_listing(&owner, json!({})).await;
    let path = format!("/api/v1/listings/{}", listing["id"].as_str().unwrap());
    for (body, field) in [
        (json!({"seats_left": 99}), "seats_left"),
        (json!({"capacity": -3}), "capacity"),
        (json!({"title": 5}), "title"),
        (json!({"starts_at": "2000-01-01T00:00:00Z"}), "starts_at"),
    ] {
        let problem = assert_problem(
            app.patch_json(&path, &body, Some(&owner.access)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(fields(&problem), [field], "{body}");
    }
    let after = app.get_json(&path, None).await;
    assert_eq!(after, listing);
}

#[tokio::test]
async fn a_blank_title_and_an_absurd_page_are_422_not_500() {
    let app = spawn_app().await;
    let provider = app.register("provider").await;
    let body = app.listing_body(json!({"title": "    "}));
    let problem = assert_problem(
        app.post_json("/api/v1/listings", &body, Some(&provider.access))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(fields(&problem), ["title"]);
    let problem = assert_problem(
        app.get("/api/v1/listings?page=100000000000000000", None)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(fields(&problem), ["page"]);
    assert_eq!(app.count("listings").await, 0);
}

#[tokio::test]
async fn a_nul_character_is_422_naming_its_field_not_500() {
    let app = spawn_app().await;
    let provider = app.register("provider").await;
    let body = app.listing_body(json!({"title": "Kayak\u{0}tour"}));
    let problem = assert_problem(
        app.post_json("/api/v1/listings", &body, Some(&provider.access))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(fields(&problem), ["title"]);
    let problem = assert_problem(
        app.get("/api/v1/listings?search=a%00b", None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(fields(&problem), ["search"]);
    assert_eq!(app.count("listings").await, 0);
}

#[tokio::test]
async fn creating_a_listing_twice_with_one_key_makes_one_listing() {
    let app = spawn_app().await;
    let provider = app.register("provider").await;
    let body = app.listing_body(json!({}));
    let mut ids = Vec::new();
    for _ in 0..2 {
        let resp = app
            .post_json_with_key(
                "/api/v1/listings",
                &body,
                Some(&provider.access),
                "listing-1",
            )
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        ids.push(resp.json::<Value>().await.unwrap()["id"].clone());
    }
    assert_eq!(ids[0], ids[1]);
    assert_eq!(app.count("listings").await, 1);
}
