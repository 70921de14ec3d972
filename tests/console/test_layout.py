"""The console's shared layout: navigation, current corp and switcher, language switch, login and logout."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from siyu.console.navigation import navigation_for
from siyu.corps.access import Actor
from tests import factories
from tests.conftest import World

LIST = reverse("customers:list")


def user_of(actor: Actor) -> object:
    return get_user_model().objects.get(pk=actor.user_id)


def test_the_login_page_is_a_form_with_the_language_switch_and_no_navigation(
    client: Client, db: None
) -> None:
    # when
    response = client.get(reverse("console:login"))

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="username"' in html and 'name="password"' in html and 'data-testid="login-submit"' in html
    assert 'data-testid="lang-switch"' in html
    assert 'data-testid="nav"' not in html


def test_logging_in_through_the_form_lands_on_the_customer_list(client: Client, world: World) -> None:
    # when
    response = client.post(
        reverse("console:login"), {"username": "wang", "password": world.password}, follow=True
    )

    # then
    assert response.redirect_chain[-1][0] == LIST
    assert response.context["user"].username == "wang"


def test_a_wrong_password_shows_an_error_and_stays_on_the_login_page(client: Client, world: World) -> None:
    # when
    response = client.post(reverse("console:login"), {"username": "wang", "password": "nope"})

    # then
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_pages_carry_navigation_corp_htmx_and_the_csrf_header(client: Client, world: World) -> None:
    # given
    client.force_login(user_of(world.admin))  # type: ignore[arg-type]

    # when
    response = client.get(LIST)

    # then
    html = response.content.decode()
    assert f'<a href="{LIST}" aria-current="page">' in html
    assert f'href="{reverse("tags:list")}"' in html and f'href="{reverse("corps:staff_list")}"' in html
    assert world.corp.name in html
    assert "siyu/vendor/htmx.min.js" in html and "siyu/siyu.css" in html
    token = response.context["csrf_token"]
    assert f'hx-headers=\'{{"X-CSRFToken": "{token}"}}\'' in html
    assert 'data-testid="logout"' in html
    assert 'data-testid="corp-switcher"' not in html  # one corp: nothing to switch to


def test_navigation_marks_the_section_of_the_current_page(world: World) -> None:
    # when
    items = {item.url: item.active for item in navigation_for(world.staff_wang, "corps:staff_list")}
    on_detail = {item.url: item.active for item in navigation_for(world.admin, "customers:detail")}

    # then
    assert items[reverse("corps:staff_list")] is True
    assert items[reverse("corps:department_list")] is False
    assert items[LIST] is False
    assert on_detail[LIST] is True
    assert navigation_for(None, "customers:list") == []


def test_a_superuser_switches_between_corps(client: Client, world: World) -> None:
    # given a superuser with no membership, and a customer in each corp
    root = get_user_model().objects.create_superuser("root", password=world.password)
    factories.follow(factories.make_customer(world.corp, "本家客户"), world.wang)
    factories.follow(
        factories.make_customer(world.other_corp, "别家客户"),
        factories.make_staff(world.other_corp, "别家员工"),
    )
    client.force_login(root)
    first = client.get(LIST)

    # when
    client.post(reverse("console:switch_corp"), {"corp_id": world.other_corp.pk})
    second = client.get(LIST)

    # then
    assert 'data-testid="corp-switcher"' in first.content.decode()
    assert first.context["current_corp"] == world.corp
    assert [r.customer.name for r in first.context["rows"]] == ["本家客户"]
    assert second.context["current_corp"] == world.other_corp
    assert [r.customer.name for r in second.context["rows"]] == ["别家客户"]


def test_nobody_else_can_switch_to_a_corp_they_do_not_belong_to(client: Client, world: World) -> None:
    # given
    client.force_login(user_of(world.admin))  # type: ignore[arg-type]

    # when
    response = client.post(reverse("console:switch_corp"), {"corp_id": world.other_corp.pk})
    after = client.get(LIST)

    # then
    assert response.status_code == 302
    assert after.context["current_corp"] == world.corp
    assert client.post(reverse("console:switch_corp"), {"corp_id": "x"}).status_code == 302
    assert client.get(reverse("console:switch_corp")).status_code == 405


def test_the_language_switch_turns_the_console_english_and_back(client: Client, world: World) -> None:
    # given
    client.force_login(user_of(world.admin))  # type: ignore[arg-type]
    default = client.get(LIST)

    # when
    switched = client.post("/i18n/setlang/", {"language": "en", "next": LIST}, follow=True)
    back = client.post("/i18n/setlang/", {"language": "zh-hans", "next": LIST}, follow=True)

    # then
    assert '<html lang="zh-hans">' in default.content.decode()
    assert switched.redirect_chain[-1][0] == LIST
    assert '<html lang="en">' in switched.content.decode()
    assert '<html lang="zh-hans">' in back.content.decode()


def test_logout_ends_the_session(client: Client, world: World) -> None:
    # given
    client.force_login(user_of(world.admin))  # type: ignore[arg-type]

    # when
    client.post(reverse("console:logout"))
    response = client.get(LIST)

    # then
    assert response.status_code == 302 and response["Location"].startswith(reverse("console:login"))


def test_a_user_without_a_corp_gets_a_clear_403(client: Client, db: None) -> None:
    # given
    client.force_login(get_user_model().objects.create_user("nobody", password="x-very-long-password"))

    # when
    response = client.get(LIST)

    # then
    assert response.status_code == 403
    assert 'data-testid="no-corp"' in response.content.decode()


def test_the_home_page_goes_to_the_customer_list(client: Client, world: World) -> None:
    # given
    client.force_login(user_of(world.admin))  # type: ignore[arg-type]

    # when
    response = client.get("/")

    # then
    assert response.status_code == 302 and response["Location"] == LIST


def test_static_assets_exist_and_htmx_keeps_its_licence(client: Client, db: None) -> None:
    # when
    css = client.get("/static/siyu/siyu.css")
    htmx = client.get("/static/siyu/vendor/htmx.min.js")

    # then
    assert css.status_code == 200 and htmx.status_code == 200
    head = b"".join(htmx.streaming_content)[:300].decode()  # type: ignore[attr-defined]
    assert "htmx" in head and "BSD" in head
