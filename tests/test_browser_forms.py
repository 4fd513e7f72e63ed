"""Every form and every button of every page, pressed in a real browser (Debian's
Chromium driven by Playwright) against real `playfair run` processes on SQLite, each with
its worker in the same process: the visible outcome and the effect behind it (a row, a
balance, a delivery) are checked after each press, and no answer waits on a lock.

CONTROLS below is the list of what a user can press, as visitor, listener, artist, label
or admin: the page, the selector, what it should change. `test_the_table_covers_every_form_
and_button` parses server/web/templates/ and server/web/static/ and fails when a form or a
button appears that the table does not name, so this list cannot silently fall behind the
pages.

Two instances ("here" and "there", partners) and a small stand-in for the rest of the
world ("elsewhere": Stripe's Checkout API, a visitor's own fediverse server, an OAuth
app's callback) are shared by the whole module; the tests run in file order on them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, expect
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.accounts import Invitation, WebSession, secret_digest
from models.app_passwords import AppPassword
from models.catalogue import (
    Artist,
    Favourite,
    Playlist,
    PlaylistItem,
    Release,
    Track,
    TrackStatus,
    Visibility,
)
from models.federation import (
    Delivery,
    DeliveryState,
    DomainPolicy,
    DomainPolicyKind,
    Follow,
    FollowState,
    Partnership,
    PartnerState,
    RemoteActor,
)
from models.ledger import Payout, PayoutState, artist_key
from models.membership import Member, MembershipStatus
from models.plays import ListenerTrack, Play
from models.profiles import ActorProfile
from models.remote_plays import RemotePlay, RemoteTrack
from models.tokens import AccessToken
from models.users import AccountStatus, Role
from models.vouchers import Voucher
from server.services.money import normalise_code
from tests.audio import make_audio
from tests.instances import Instance, make_instance
from tests.pages import (
    ANSWER_BOUND,
    WAIT_MS,
    Control,
    Database,
    Elsewhere,
    LeavingWatch,
    Visit,
    controls_in_script,
    controls_in_sources,
    controls_in_template,
    player,
    says,
    snap,
    warns,
)
from tests.test_browser import PASSWORD, PHONE, balance, wait_until
from tests.test_browser import browser as browser  # the fixture, shared
from tests.test_browser import playwright as playwright  # the fixture, shared

# Harbour Songs: a long first track to pause, seek and skip in (skipped early, it is
# free), a short second one to hear to the end (and pay for)
LONG_SECONDS, SHORT_SECONDS = 12.0, 4.0
NEW_PASSWORD = "another long password 2"


# ---------------------------------------------------------------------------------------
# The table: every form and button a user can press.


# fmt: off
CONTROLS: tuple[Control, ...] = (
    # ---- every page
    Control("search", "base.html GET /search q", who="visitor", page="any page (the header)",
            selector="header form[role=search] button", request="GET /search",
            changes="results page lists the matching release",
            test="test_a_visitor_becomes_a_listener"),
    Control("log-out", "base.html POST {{ url_for('accounts.logout') }} -", who="listener",
            page="any page (the header)", selector="header form[action='/logout'] button",
            request="POST /logout", changes="the web session row is gone; the header offers Log in",
            test="test_a_visitor_becomes_a_listener"),
    # ---- accounts
    Control("log-in", "login.html POST . password,username", who="visitor", page="/login",
            selector="main form:has(input[name=password]) button[type=submit]",
            request="POST /login", changes="a web session row; the header names the account",
            test="test_a_visitor_becomes_a_listener"),
    Control("sign-up",
            "signup.html POST {{ url_for('accounts.signup') }} "
            "account_type,email,invitation,password,password_again,username", who="visitor",
            page="/signup", selector="main form[action='/signup'] button[type=submit]",
            request="POST /signup",
            changes="an active listener with the starter tokens in the wallet, signed in",
            test="test_a_visitor_becomes_a_listener"),
    Control("sign-up-artist",
            "signup.html POST {{ url_for('accounts.signup') }} "
            "account_type,email,invitation,password,password_again,username", who="visitor",
            page="/signup", selector="main form[action='/signup'] button[type=submit]",
            request="POST /signup",
            changes="the 'almost there' page; a pending listener account that asks to be an "
                    "artist", test="test_a_visitor_becomes_a_listener"),
    Control("sign-up-invited",
            "signup.html POST {{ url_for('accounts.signup') }} "
            "account_type,email,invitation,password,password_again,username", who="visitor",
            page="/signup (there: invitation only)",
            selector="main form[action='/signup'] button[type=submit]", request="POST /signup",
            changes="an active account; the invitation is used up",
            test="test_admin_runs_accounts_members_and_vouchers"),
    Control("change-password",
            "settings.html POST {{ url_for('accounts.password') }} "
            "current_password,new_password,new_password_again", who="listener", page="/settings",
            selector="form[action='/settings/password'] button", request="POST /settings/password",
            changes="'password has been changed'; only the new password logs in",
            test="test_settings_tokens_export_and_deletion"),
    Control("make-token", "settings.html POST {{ url_for('accounts.make_token') }} name,scope",
            who="listener", page="/settings", selector="form[action='/settings/tokens'] button",
            request="POST /settings/tokens",
            changes="the token shown once; an access token row with the scopes; the API answers "
                    "it", test="test_settings_tokens_export_and_deletion"),
    Control("revoke-token",
            "settings.html POST {{ url_for('accounts.revoke_token', token_id=token.id) }} -",
            who="listener", page="/settings",
            selector="form[action='/settings/tokens/{token}/revoke'] button",
            request="POST /settings/tokens/\\d+/revoke",
            changes="the token leaves the list; revoked_at is set; the API refuses it (401)",
            test="test_settings_tokens_export_and_deletion"),
    Control("delete-account",
            "settings.html POST {{ url_for('accounts.delete') }} balance,password,recipient",
            who="listener", page="/settings", selector="form[action='/settings/delete'] button",
            request="POST /settings/delete",
            changes="signed out on the home page; no user row; the tokens went to the chosen "
                    "listener", test="test_settings_tokens_export_and_deletion"),
    Control("make-app-password",
            "settings.html POST {{ url_for('accounts.make_app_password') }} name",
            who="listener", page="/settings (Apps)",
            selector="form[action='/settings/app-passwords'] button",
            request="POST /settings/app-passwords",
            changes="the app password shown once; an app_passwords row holding it only sealed; "
                    "/rest/ping answers it (md5 token and salt)",
            test="test_settings_app_passwords_for_subsonic_apps"),
    Control("revoke-app-password",
            "settings.html POST {{ url_for('accounts.revoke_app_password', "
            "app_password_id=app.id) }} -",
            who="listener", page="/settings (Apps)",
            selector="form[action='/settings/app-passwords/{app_password}/revoke'] button",
            request="POST /settings/app-passwords/\\d+/revoke",
            changes="the app password leaves the list; revoked_at is set; /rest/ping refuses it "
                    "with Subsonic error 40", test="test_settings_app_passwords_for_subsonic_apps"),
    # ---- admin: accounts, membership, vouchers, payouts
    Control("invite", "admin_accounts.html POST {{ url_for('admin.invite') }} role", who="admin",
            page="/admin/accounts", selector="form[action='/admin/invitations'] button",
            request="POST /admin/invitations",
            changes="the new code shown; an invitation row with its digest and role",
            test="test_admin_runs_accounts_members_and_vouchers"),
    Control("approve",
            "admin_accounts.html POST {{ url_for('admin.account_action', user_id=user.id, "
            "action=action) }} -", who="admin", page="/admin/accounts",
            selector="form[action='/admin/accounts/{user}/approve'] button",
            request="POST /admin/accounts/\\d+/approve",
            changes="the account is active with the role it asked for (artist); an audit entry",
            test="test_admin_runs_accounts_members_and_vouchers"),
    Control("disable",
            "admin_accounts.html POST {{ url_for('admin.account_action', user_id=user.id, "
            "action=action) }} -", who="admin", page="/admin/accounts",
            selector="form[action='/admin/accounts/{user}/disable'] button",
            request="POST /admin/accounts/\\d+/disable",
            changes="the account is disabled and signed out everywhere (no session rows)",
            test="test_admin_runs_accounts_members_and_vouchers"),
    Control("enable",
            "admin_accounts.html POST {{ url_for('admin.account_action', user_id=user.id, "
            "action=action) }} -", who="admin", page="/admin/accounts",
            selector="form[action='/admin/accounts/{user}/enable'] button",
            request="POST /admin/accounts/\\d+/enable",
            changes="the account is active again and logs in",
            test="test_admin_runs_accounts_members_and_vouchers"),
    Control("delete",
            "admin_accounts.html POST {{ url_for('admin.account_action', user_id=user.id, "
            "action=action) }} -", who="admin", page="/admin/accounts",
            selector="form[action='/admin/accounts/{user}/delete'] button",
            request="POST /admin/accounts/\\d+/delete",
            changes="the account leaves the table; no user row",
            test="test_admin_runs_accounts_members_and_vouchers"),
    Control("add-member",
            "admin_members.html POST {{ url_for('admin_members.add_member_form') }} "
            "membership_class,username", who="admin", page="/admin/members",
            selector="form[action='/admin/members'] button", request="POST /admin/members",
            changes="a member row for the account and class",
            test="test_admin_runs_accounts_members_and_vouchers"),
    Control("record-shares",
            "admin_members.html POST {{ url_for('admin_members.shares_form', "
            "number=member.number) }} "
            "method,reference,shares", who="admin", page="/admin/members",
            selector="form[action='/admin/members/{number}/shares'] button",
            request="POST /admin/members/\\d+/shares", changes="the member's shares",
            test="test_admin_runs_accounts_members_and_vouchers"),
    Control("set-status",
            "admin_members.html POST {{ url_for('admin_members.status_form', "
            "number=member.number) }} "
            "renewal_date,status", who="admin", page="/admin/members",
            selector="form[action='/admin/members/{number}/status'] button",
            request="POST /admin/members/\\d+/status",
            changes="the member's status and renewal date",
            test="test_admin_runs_accounts_members_and_vouchers"),
    Control("issue-vouchers", "admin_vouchers.html POST /admin/vouchers count,days,tokens",
            who="admin", page="/admin/vouchers", selector="form[action='/admin/vouchers'] button",
            request="POST /admin/vouchers",
            changes="the codes, shown once; voucher rows; a code redeems in a wallet",
            test="test_admin_runs_accounts_members_and_vouchers"),
    Control("pay-payouts", "admin_payouts.html POST /admin/payouts/run -", who="admin",
            page="/admin/payouts", selector="form[action='/admin/payouts/run'] button",
            request="POST /admin/payouts/run",
            changes="'Paid 1 payouts'; the payout is paid; the artist's earnings are paid out",
            test="test_the_player_and_the_money_it_moves"),
    # ---- admin: federation
    Control("ask-partner",
            "admin_federation.html POST /admin/federation/partnerships instance action=request",
            who="admin", page="/admin/federation",
            selector="form[action='/admin/federation/partnerships'] button[value=request]",
            request="POST /admin/federation/partnerships",
            changes="we follow them: requested; their instance gets the request",
            test="test_partnerships_and_domains"),
    Control("accept-partner",
            "admin_federation.html POST /admin/federation/partnerships id action={{ verb }}",
            who="admin", page="/admin/federation",
            selector="form[action='/admin/federation/partnerships']"
                     ":has(input[name=id][value='{id}']) "
                     "button[value=accept]", request="POST /admin/federation/partnerships",
            changes="they follow us: accepted; our Accept reaches them",
            test="test_partnerships_and_domains"),
    Control("refuse-partner",
            "admin_federation.html POST /admin/federation/partnerships id action={{ verb }}",
            who="admin", page="/admin/federation",
            selector="form[action='/admin/federation/partnerships']"
                     ":has(input[name=id][value='{id}']) "
                     "button[value=refuse]", request="POST /admin/federation/partnerships",
            changes="they follow us: refused; our Reject reaches them",
            test="test_partnerships_and_domains"),
    Control("block-domain",
            "admin_federation.html POST /admin/federation/domains domain,reason action=block",
            who="admin", page="/admin/federation",
            selector="form[action='/admin/federation/domains'] button[value=block]",
            request="POST /admin/federation/domains",
            changes="a block policy row with its reason, listed",
            test="test_partnerships_and_domains"),
    Control("allow-domain",
            "admin_federation.html POST /admin/federation/domains domain,reason action=allow",
            who="admin", page="/admin/federation",
            selector="form[action='/admin/federation/domains'] button[value=allow]",
            request="POST /admin/federation/domains", changes="an allow policy row, listed",
            test="test_partnerships_and_domains"),
    Control("remove-domain",
            "admin_federation.html POST /admin/federation/domains domain action=remove",
            who="admin", page="/admin/federation",
            selector="form[action='/admin/federation/domains']"
                     ":has(input[name=domain][value='{domain}']) "
                     "button[value=remove]", request="POST /admin/federation/domains",
            changes="the policy row is gone", test="test_partnerships_and_domains"),
    Control("show-deliveries", "admin_federation.html GET /admin/federation state", who="admin",
            page="/admin/federation", selector="form[action='/admin/federation'] button",
            request="GET /admin/federation",
            changes="only the deliveries in the chosen state are listed",
            test="test_failed_deliveries_are_replayed"),
    Control("replay-all", "admin_federation.html POST /admin/federation/deliveries/replay -",
            who="admin", page="/admin/federation",
            selector="form[action='/admin/federation/deliveries/replay']:not(:has(input[name=id])) "
                     "button", request="POST /admin/federation/deliveries/replay",
            changes="'1 deliveries queued again'; the failed delivery is attempted again",
            test="test_failed_deliveries_are_replayed"),
    Control("replay-one", "admin_federation.html POST /admin/federation/deliveries/replay id",
            who="admin", page="/admin/federation",
            selector="form[action='/admin/federation/deliveries/replay']"
                     ":has(input[name=id][value='{id}']) "
                     "button", request="POST /admin/federation/deliveries/replay",
            changes="that delivery is attempted again and delivered",
            test="test_failed_deliveries_are_replayed"),
    # ---- OAuth, and following from elsewhere
    Control("allow-app", "consent.html POST {{ action }} - decision=allow", who="listener",
            page="/oauth/authorize?…", selector="main form button[name=decision][value=allow]",
            request="POST /oauth/authorize",
            changes="back at the app with a code; the code buys an access token the API accepts",
            test="test_oauth_consent_allows_and_denies"),
    Control("deny-app", "consent.html POST {{ action }} - decision=deny", who="listener",
            page="/oauth/authorize?…", selector="main form button[name=decision][value=deny]",
            request="POST /oauth/authorize",
            changes="back at the app with error=access_denied; no token made",
            test="test_oauth_consent_allows_and_denies"),
    Control("follow-interaction", "authorize_interaction.html POST /follow account", who="listener",
            page="/authorize_interaction?uri=…", selector="main form[action='/follow'] button",
            request="POST /follow",
            changes="a follow of the remote artist, accepted by their server",
            test="test_following_across_servers"),
    Control("remote-follow", "actor.html POST {{ actor_path }}/remote-follow account",
            who="visitor", page="/artists/<name>", selector="form[action$='/remote-follow'] button",
            request="POST /artists/[^/]+/remote-follow",
            changes="the visitor's own server's follow page, for this artist",
            test="test_following_across_servers"),
    Control("follow-with", "actor.html POST /follow account", who="listener",
            page="/artists/<name>", selector="main form[action='/follow'] button",
            request="POST /follow", changes="'You follow …'; an accepted follow row",
            test="test_following_across_servers"),
    # ---- the Profile of an artist or label (dashboard)
    Control("profile-picture",
            "_profile_form.html POST /dashboard/profiles/{{ owner.name }}/{{ role }} file",
            who="artist", page="/dashboard",
            selector="form[action='/dashboard/profiles/{actor}/{role}'] button",
            request="POST /dashboard/profiles/[^/]+/(avatar|header)",
            changes="'… once it is resized'; the worker cuts it and the page shows it",
            test="test_actor_profile_forms"),
    Control("profile-save",
            "_profile_form.html POST /dashboard/profiles/{{ owner.name }} discoverable,"
            "indexable,link_name_{{ number }},link_url_{{ number }}",
            who="artist", page="/dashboard",
            selector="form[action='/dashboard/profiles/{actor}'] button",
            request="POST /dashboard/profiles/[^/]+",
            changes="'Profile saved.'; the links and choices in the actor's profile row",
            test="test_actor_profile_forms"),
    Control("alias-add", "_profile_form.html POST /dashboard/profiles/{{ owner.name }}/aliases "
            "account", who="artist", page="/dashboard",
            selector="form[action='/dashboard/profiles/{actor}/aliases']:has(input[name=account]) "
                     "button",
            request="POST /dashboard/profiles/[^/]+/aliases",
            changes="'… may now move here'; the remote actor's id in alsoKnownAs",
            test="test_actor_profile_forms"),
    Control("alias-remove", "_profile_form.html POST /dashboard/profiles/{{ owner.name }}/aliases "
            "remove", who="artist", page="/dashboard",
            selector="form[action='/dashboard/profiles/{actor}/aliases']:has(input[name=remove]) "
                     "button",
            request="POST /dashboard/profiles/[^/]+/aliases",
            changes="'Alias removed.'; alsoKnownAs is empty again",
            test="test_actor_profile_forms"),
    Control("move", "_profile_form.html POST /dashboard/profiles/{{ owner.name }}/move account",
            who="artist", page="/dashboard",
            selector="form[action='/dashboard/profiles/{actor}/move'] button",
            request="POST /dashboard/profiles/[^/]+/move",
            changes="refused while the target does not list the actor as an alias",
            test="test_actor_profile_forms"),
    # ---- artist and label dashboards
    Control("artist-settings",
            "dashboard.html POST /dashboard/artists/{{ artist.id }}/settings approves_followers",
            who="artist", page="/dashboard",
            selector="form[action='/dashboard/artists/{artist}/settings'] button",
            request="POST /dashboard/artists/\\d+/settings",
            changes="'Saved.'; the artist approves followers",
            test="test_artist_and_label_dashboards"),
    Control("upload", "dashboard.html POST /dashboard/upload album,artist,file,free,publish",
            who="artist", page="/dashboard",
            selector="form[action='/dashboard/upload']:has(input[name=artist][value='{artist}']) "
                     "button[type=submit]", request="POST /dashboard/upload",
            changes="'… is uploaded'; a draft release and a track the worker makes ready",
            test="test_artist_and_label_dashboards"),
    Control("publish", "dashboard.html POST /dashboard/releases/{{ release.id }}/publish -",
            who="artist", page="/dashboard",
            selector="form[action='/dashboard/releases/{release}/publish'] button",
            request="POST /dashboard/releases/\\d+/publish",
            changes="'Published.'; the release is public and announced",
            test="test_artist_and_label_dashboards"),
    Control("ask-payout", "dashboard.html POST /dashboard/artists/{{ artist.id }}/payout -",
            who="artist", page="/dashboard",
            selector="form[action='/dashboard/artists/{artist}/payout'] button",
            request="POST /dashboard/artists/\\d+/payout",
            changes="a requested payout of the earnings (or why not yet)",
            test="test_the_player_and_the_money_it_moves"),
    Control("accept-follower",
            "dashboard.html POST /dashboard/artists/{{ artist.id }}/followers/{{ follow.id }}/{{ "
            "verb }} -", who="artist", page="/dashboard",
            selector="form[action='/dashboard/artists/{artist}/followers/{follow}/accept'] button",
            request="POST /dashboard/artists/\\d+/followers/\\d+/accept",
            changes="the follow is accepted here and on the follower's server",
            test="test_following_across_servers"),
    Control("reject-follower",
            "dashboard.html POST /dashboard/artists/{{ artist.id }}/followers/{{ follow.id }}/{{ "
            "verb }} -", who="artist", page="/dashboard",
            selector="form[action='/dashboard/artists/{artist}/followers/{follow}/reject'] button",
            request="POST /dashboard/artists/\\d+/followers/\\d+/reject",
            changes="the follow is refused here and on the follower's server",
            test="test_following_across_servers"),
    Control("label-settings",
            "dashboard.html POST /dashboard/artists/{{ artist.id }}/settings approves_followers",
            who="label", page="/dashboard",
            selector="form[action='/dashboard/artists/{artist}/settings'] button",
            request="POST /dashboard/artists/\\d+/settings",
            changes="'Saved.'; the label's artist approves followers no more",
            test="test_artist_and_label_dashboards"),
    # ---- listener: wallet, track page, library, playlists
    Control("redeem", "wallet.html POST /wallet/voucher code", who="listener", page="/wallet",
            selector="form[action='/wallet/voucher'] button", request="POST /wallet/voucher",
            changes="'Voucher redeemed'; the balance and the wallet's ledger account grow by its "
                    "tokens", test="test_wallet_vouchers_and_card_checkout"),
    Control("checkout", "wallet.html POST /wallet/checkout pack", who="listener", page="/wallet",
            selector="form[action='/wallet/checkout']:has(input[name=pack][value='{pack}']) "
                     "button", request="POST /wallet/checkout",
            changes="off to Stripe's page for the pack; once paid, back with the tokens; when "
                    "Stripe fails, a plain message on the wallet",
            test="test_wallet_vouchers_and_card_checkout"),
    Control("favourite", "track.html POST /tracks/{{ track.id }}/favourite -", who="listener",
            page="/tracks/<id>", selector="form[action='/tracks/{track}/favourite'] button",
            request="POST /tracks/\\d+/favourite",
            changes="the button is pressed (aria-pressed); a favourite row; pressed again, none",
            test="test_track_page_library_and_playlists"),
    Control("buy-now", "track.html POST /tracks/{{ track.id }}/buy -", who="listener",
            page="/tracks/<id>", selector="form[action='/tracks/{track}/buy'] button",
            request="POST /tracks/\\d+/buy",
            changes="owned at once for what is left of 1022 tokens, a buy line in the wallet; "
                    "with too few tokens a plain message and nothing moves",
            test="test_buy_now_from_the_track_page"),
    Control("add-to-playlist", "track.html POST /playlist-items playlist,track_id", who="listener",
            page="/tracks/<id>", selector="form[action='/playlist-items'] button",
            request="POST /playlist-items",
            changes="a playlist item row; the track on the playlist's page",
            test="test_track_page_library_and_playlists"),
    Control("make-playlist", "library.html POST /playlists public,title", who="listener",
            page="/library", selector="form[action='/playlists'] button", request="POST /playlists",
            changes="the playlist's page; a public playlist row",
            test="test_track_page_library_and_playlists"),
    Control("remove-from-playlist",
            "playlist.html POST /playlists/{{ playlist.id }}/items/{{ position }}/delete -",
            who="listener", page="/playlists/<id>",
            selector="form[action='/playlists/{playlist}/items/{position}/delete'] button",
            request="POST /playlists/\\d+/items/\\d+/delete",
            changes="the track leaves the playlist (no item row)",
            test="test_track_page_library_and_playlists"),
    Control("follow", "library.html POST /follow account", who="listener", page="/library",
            selector="main form[action='/follow'] button", request="POST /follow",
            changes="'You follow …'; a follow row (accepted here; sent to another server)",
            test="test_track_page_library_and_playlists"),
    Control("unfollow", "library.html POST /follows/{{ f.id }}/delete -", who="listener",
            page="/library", selector="form[action='/follows/{follow}/delete'] button",
            request="POST /follows/\\d+/delete",
            changes="the follow leaves the list; no follow row",
            test="test_track_page_library_and_playlists"),
    Control("play-in-full", "library.html POST /library/remote-release uri", who="listener",
            page="/library", selector="form[action='/library/remote-release'] button",
            request="POST /library/remote-release",
            changes="the partner's tracks get play buttons; remote track rows",
            test="test_following_across_servers"),
    Control("play-remote", "library.html button[data-play-track][data-play-kind=remote]",
            who="listener", page="/library",
            selector="button[data-play-kind=remote][data-play-track='{track}']",
            request="POST /api/v1/tracks/\\d+/plays",
            changes="the partner's track plays in full; charged here once heard (a remote play "
                    "row)", test="test_following_across_servers"),
    # ---- the player
    Control("play-preview", "_macros.html button[data-play-track]", who="visitor",
            page="/releases/<id>", selector="main button[data-play-track='{track}']",
            request="GET /tracks/\\d+/preview",
            changes="the player opens with the 45-second preview and an invitation to sign up",
            test="test_a_visitor_becomes_a_listener"),
    Control("play", "_macros.html button[data-play-track]", who="listener", page="/releases/<id>",
            selector="main button[data-play-track='{track}']",
            request="POST /api/v1/tracks/\\d+/plays",
            changes="a play session; the track plays in full; charged once heard (a play row)",
            test="test_the_player_and_the_money_it_moves"),
    Control("player-toggle", "player.js button.pf-toggle", who="listener", page="the player",
            selector="#player button.pf-toggle", request="", changes="pauses and plays the audio",
            test="test_the_player_and_the_money_it_moves"),
    Control("player-next", "player.js button.pf-next", who="listener", page="the player",
            selector="#player button.pf-next", request="POST /api/v1/tracks/\\d+/plays",
            changes="the next track of the list plays (a new session)",
            test="test_the_player_and_the_money_it_moves"),
    Control("player-previous", "player.js button.pf-prev", who="listener", page="the player",
            selector="#player button.pf-prev", request="POST /api/v1/tracks/\\d+/plays",
            changes="the previous track plays (a new session)",
            test="test_the_player_and_the_money_it_moves"),
    Control("player-seek", "player.js input.pf-seek-range", who="listener", page="the player",
            selector="#player input.pf-seek-range", request="",
            changes="the audio moves to the chosen second",
            test="test_the_player_and_the_money_it_moves"),
    Control("player-mute", "player.js button.pf-mute", who="listener", page="the player",
            selector="#player button.pf-mute", request="",
            changes="the audio is muted (aria-pressed), and again not",
            test="test_the_player_and_the_money_it_moves"),
    Control("player-queue", "player.js button.pf-queue-toggle", who="listener", page="the player",
            selector="#player button.pf-queue-toggle", request="",
            changes="the queue opens, the playing track marked",
            test="test_the_player_and_the_money_it_moves"),
    Control("player-queue-item", "player.js button.pf-queue-item", who="listener",
            page="the player", selector="#pf-queue button.pf-queue-item >> nth={index}",
            request="POST /api/v1/tracks/\\d+/plays", changes="that track of the queue plays",
            test="test_the_player_and_the_money_it_moves"),
)
# fmt: on
BY_NAME = {control.name: control for control in CONTROLS}


def test_the_table_covers_every_form_and_button() -> None:
    """A form or button added to a template or a script must be added to CONTROLS (and
    pressed by a test); one that went away must leave it."""
    in_sources = controls_in_sources()
    in_table = {control.source for control in CONTROLS}
    assert sorted(in_sources - in_table) == [], "not in CONTROLS: press them in a test"
    assert sorted(in_table - in_sources) == [], "in CONTROLS but in no template or script"
    assert len(BY_NAME) == len(CONTROLS), "two controls with one name"
    tests = {name for name in globals() if name.startswith("test_")}
    assert {control.test for control in CONTROLS} <= tests


def test_the_parser_finds_a_new_form_and_a_new_button() -> None:
    """The coverage check itself: what it would say of a page with one more form and one
    more button (so that a regex that found nothing could not pass it)."""
    page = """<form method="post" action="/gifts/{{ gift.id }}" class="stack">
      <input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
      <label>To <input name="recipient"></label>
      <button type="submit" name="how" value="now">Give</button>
      <button type="submit">Later</button></form>
      <form method="get" action="/find"><input name="q"><input type="submit" value="Go"></form>
      <form method="post" action="/ping"><input name="note"></form>
      <button type="button" data-play-track="{{ t.id }}" data-play-kind="remote">▶</button>"""
    assert controls_in_template("gift.html", page) == {
        "gift.html POST /gifts/{{ gift.id }} recipient how=now",
        "gift.html POST /gifts/{{ gift.id }} recipient",
        "gift.html GET /find q",
        "gift.html POST /ping note",
        "gift.html button[data-play-track][data-play-kind=remote]",
    }
    script = 'const a = iconButton("pf-loop", "Loop", "loop");\n' + (
        'const b = el("button", { type: "button", class: "pf-share", text: "Share" });'
    )
    assert controls_in_script("p.js", script) == {"p.js button.pf-loop", "p.js button.pf-share"}


T = TypeVar("T")


@dataclass
class Sites:
    here: Instance
    there: Instance
    elsewhere: Elsewhere
    client_id: str
    release_id: int
    here_db: Database = field(init=False)
    there_db: Database = field(init=False)
    vouchers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.here_db = Database(self.here)
        self.there_db = Database(self.there)

    def host(self, instance: Instance) -> str:
        return instance.base.split("://", 1)[1]


LIMITS = {  # one address signs up and logs in dozens of times here; no throttling
    "PLAYFAIR_ACCOUNTS__LOGIN_ATTEMPTS": "10000",
    "PLAYFAIR_ACCOUNTS__SIGNUP_ATTEMPTS": "10000",
}


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    folder = tmp_path_factory.mktemp("forms")
    elsewhere = Elsewhere()
    threading.Thread(target=elsewhere.serve_forever, daemon=True).start()
    album = folder / "Harbour Songs"
    album.mkdir()
    with ThreadPoolExecutor(4) as pool:
        audio = [
            pool.submit(make_audio, album / "01 - Low Water.mp3", "mp3", seconds=LONG_SECONDS),
            pool.submit(
                make_audio,
                album / "02 - Salt Light.mp3",
                "mp3",
                seconds=SHORT_SECONDS,
                frequency=660,
            ),
        ]
        made = [
            pool.submit(
                make_instance, folder / name, host, f"sqlite+aiosqlite:///{folder}/{name}.db"
            )
            for name, host in (("here", "127.0.0.8"), ("there", "127.0.0.9"))
        ]
        here, there = (future.result() for future in made)
        for future in audio:
            future.result()
    here.env.update(LIMITS)
    here.env.update({
        "PLAYFAIR_MONEY__PROVIDER": "stripe",
        "PLAYFAIR_MONEY__STRIPE_SECRET_KEY": "sk_test_forms",
        "PLAYFAIR_MONEY__STRIPE_WEBHOOK_SECRET": "whsec_forms",
        "PLAYFAIR_MONEY__STRIPE_API_BASE": elsewhere.base,
        "PLAYFAIR_MONEY__PAYOUT_THRESHOLD_CENTS": "0",  # one play's earnings can be paid out
        # a delivery to an inbox that is down fails for good within seconds, not days
        "PLAYFAIR_FEDERATION__DELIVERY_RETRY_BASE": "100ms",
        "PLAYFAIR_FEDERATION__DELIVERY_GIVE_UP_AFTER": "3s",
    })  # fmt: skip
    there.env.update(LIMITS)
    there.env.update({"PLAYFAIR_ACCOUNTS__SIGNUP": "invite"})
    elsewhere.webhook = f"{here.base}/payments/stripe/webhook"
    elsewhere.webhook_secret = "whsec_forms"

    def chain(*steps: Callable[[], T]) -> Callable[[], T]:
        def run() -> T:
            result: Any = None
            for step in steps:
                result = step()
            return result

        return run

    def cli(instance: Instance, *args: str, stdin: str | None = None) -> Callable[[], str]:
        return lambda: instance.cli(*args, stdin=stdin)

    secret = PASSWORD + "\n"
    with ThreadPoolExecutor(4) as pool:
        client = pool.submit(cli(here, "oauth", "add-client", "Pocket", "--public",
                                 "--scopes", "read write",
                                 "--redirect-uri", f"{elsewhere.base}/callback"))  # fmt: skip
        codes = pool.submit(cli(here, "voucher", "issue", "--tokens", "1022", "--count", "3"))
        steps = [
            chain(cli(here, "user", "add", "boss", "--role", "admin", stdin=secret)),
            chain(cli(here, "user", "add", "mira", "--role", "artist", stdin=secret),
                  cli(here, "artist", "add", "aurora", "--owner", "mira",
                      "--display-name", "Aurora Lane"),
                  cli(here, "import", str(album), "--artist", "aurora")),
            chain(cli(here, "user", "add", "lina", "--role", "label", stdin=secret),
                  cli(here, "artist", "add", "tidewater", "--owner", "lina",
                      "--display-name", "Tidewater Records")),
            chain(cli(there, "user", "add", "skipper", "--role", "admin", stdin=secret),
                  cli(there, "user", "add", "tidal", "--role", "artist", stdin=secret),
                  cli(there, "artist", "add", "tide", "--owner", "tidal",
                      "--display-name", "Tide")),
        ]  # fmt: skip
        for future in [pool.submit(step) for step in steps]:
            future.result()
        client_id = client.result().split("client_id: ", 1)[1].split()[0]
    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(instance.start) for instance in (here, there)]:
            future.result()
    release = int(here.wait_for(r"release (\d+) announced").group(1))
    made_sites = Sites(here, there, elsewhere, client_id, release, codes.result().split())
    try:
        yield made_sites
    finally:
        outputs = [instance.stop() for instance in (here, there)]
        made_sites.here_db.engine.dispose()
        made_sites.there_db.engine.dispose()
        elsewhere.shutdown()
        for output in outputs:
            assert "Traceback" not in output, output
            assert "database is locked" not in output, output


@pytest.fixture
def visit(
    browser: Browser,
    sites: Sites,
    request: pytest.FixtureRequest,
) -> Iterator[Callable[[Instance], Visit]]:
    """``visit(instance)``: a fresh browser context (no cookies) on that instance; at the
    end of the test each must have seen no error, no 5xx and no slow answer, and the test
    must have pressed every control the table gives it."""
    contexts = []
    visits: list[Visit] = []
    pressed: set[str] = set()

    def open_visit(instance: Instance) -> Visit:
        context = browser.new_context(
            viewport=PHONE, base_url=instance.base, service_workers="block"
        )
        contexts.append(context)
        made = Visit(
            context.new_page(), LeavingWatch(instance.base, sites.elsewhere.base), BY_NAME, pressed
        )
        made.attach()
        visits.append(made)
        return made

    yield open_visit
    for context in contexts:
        context.close()
    for made in visits:
        made.check()
    mine = {control.name for control in CONTROLS if control.test == request.node.name}
    assert sorted(mine - pressed) == [], "in the table for this test but never pressed"


def sign_up(visit: Visit, name: str, *, artist: bool = False, invitation: str = "") -> None:
    page = visit.page
    page.goto("/signup")
    form = visit.form("sign-up")
    form.get_by_label("Name", exact=True).fill(name)
    form.get_by_label("Password", exact=True).fill(PASSWORD)
    form.get_by_label("Password again").fill(PASSWORD)
    if artist:
        form.get_by_label("Artist or label").check()
    if invitation:
        form.get_by_label("Invitation code").fill(invitation)
    kind = "sign-up-invited" if invitation else "sign-up-artist" if artist else "sign-up"
    visit.press(kind, lands=r"/$" if not artist else r"/signup$")


def log_in(visit: Visit, name: str, password: str = PASSWORD) -> None:
    visit.page.goto("/login")
    form = visit.form("log-in")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Password").fill(password)
    visit.press("log-in", lands=r"/$")
    expect(visit.page.locator("header nav")).to_contain_text(name)


def track_ids(db: Database, release_title: str) -> list[int]:
    return db.all(
        select(Track.id)
        .join(Release, Release.id == Track.release_id)
        .where(Release.title == release_title)
        .order_by(Track.position)
    )


def sessions_of(db: Database, name: str) -> int:
    return int(
        db.scalar(
            select(func.count())
            .select_from(WebSession)
            .where(WebSession.user_id == db.user_id(name))
        )
    )


# ---------------------------------------------------------------------------------------
# The tests, in the order of an instance's life.


def test_a_visitor_becomes_a_listener(visit: Callable[[Instance], Visit], sites: Sites) -> None:
    db = sites.here_db
    visitor = visit(sites.here)
    page = visitor.page
    page.goto("/")
    page.get_by_role("searchbox").fill("harbour")
    visitor.press("search", lands=r"/search\?q=harbour")
    expect(page.locator("main")).to_contain_text("Harbour Songs")
    first, _second = track_ids(db, "Harbour Songs")
    page.goto(f"/releases/{sites.release_id}")
    visitor.press("play-preview", track=first)
    wait_until(page, "window.playfairPlayer.state().mode === 'preview'")
    expect(page.locator("#player a[href='/signup']")).to_be_visible()

    sign_up(visitor, "lena")
    lena = db.user("lena")
    assert lena is not None and lena.status is AccountStatus.ACTIVE and lena.role is Role.LISTENER
    assert balance(page) == db.wallet("lena") > 0  # the starter tokens
    assert sessions_of(db, "lena") == 1
    visitor.press("log-out", lands=r"/$")
    expect(page.locator("header nav")).to_contain_text("Log in")
    assert sessions_of(db, "lena") == 0
    page.goto("/login")
    snap(page, "login")
    log_in(visitor, "lena")
    assert sessions_of(db, "lena") == 1

    artist = visit(sites.here)
    sign_up(artist, "ari", artist=True)
    expect(artist.page.locator("h1")).to_have_text("Almost there")
    snap(artist.page, "pending")
    ari = db.user("ari")
    assert ari is not None and ari.status is AccountStatus.PENDING
    assert (ari.role, ari.wants_role) == (Role.LISTENER, Role.ARTIST)


def test_admin_runs_accounts_members_and_vouchers(
    visit: Callable[[Instance], Visit], sites: Sites
) -> None:
    db = sites.here_db
    for name in ("dora", "eli"):  # dora is deleted below; eli becomes a member
        sign_up(visit(sites.here), name)
    admin = visit(sites.here)
    page = admin.page
    log_in(admin, "boss")
    page.goto("/admin/accounts")
    # the server refuses to let admins disable or delete themselves: no such buttons
    own = page.locator(f"form[action^='/admin/accounts/{db.user_id('boss')}/']")
    expect(own).to_have_count(0)

    admin.press("approve", user=db.user_id("ari"), lands=r"/admin/accounts$")
    ari = db.user("ari")
    assert ari is not None and ari.status is AccountStatus.ACTIVE
    assert (ari.role, ari.wants_role) == (Role.ARTIST, None)

    lena = db.user_id("lena")
    assert sessions_of(db, "lena") >= 1
    admin.press("disable", user=lena, lands=r"/admin/accounts$")
    assert db.user("lena").status is AccountStatus.DISABLED  # type: ignore[union-attr]
    assert sessions_of(db, "lena") == 0
    admin.press("enable", user=lena, lands=r"/admin/accounts$")
    assert db.user("lena").status is AccountStatus.ACTIVE  # type: ignore[union-attr]
    log_in(visit(sites.here), "lena")

    dora = db.user_id("dora")
    admin.press("delete", user=dora, lands=r"/admin/accounts$")
    assert db.user("dora") is None
    expect(page.locator("table")).not_to_contain_text("dora")
    snap(page, "admin-accounts")

    page.goto("/admin/members")
    form = admin.form("add-member")
    form.get_by_label("Account name").fill("eli")
    form.get_by_label("Class").select_option("listener")
    admin.press("add-member", lands=r"/admin/members$")
    member = db.scalar(select(Member).where(Member.user_id == db.user_id("eli")))
    assert member is not None and member.membership_class == "listener"
    form = admin.form("record-shares", number=member.number)
    form.get_by_label("Shares").fill("3")
    form.get_by_label("by").select_option("purchase")
    form.get_by_label("reference").fill("receipt 17")
    admin.press("record-shares", number=member.number, lands=r"/admin/members$")
    assert db.scalar(select(Member.shares).where(Member.id == member.id)) == 3
    form = admin.form("set-status", number=member.number)
    form.get_by_label("Status").select_option("grace")
    form.get_by_label("renews").fill("2027-01-31")
    admin.press("set-status", number=member.number, lands=r"/admin/members$")
    changed = db.scalar(select(Member).where(Member.id == member.id))
    assert changed.status is MembershipStatus.GRACE
    assert changed.renewal_date.isoformat() == "2027-01-31"
    snap(page, "admin-members")

    page.goto("/admin/vouchers")
    form = admin.form("issue-vouchers")
    form.get_by_label("Tokens per code").fill("500")
    form.get_by_label("How many codes").fill("2")
    admin.press("issue-vouchers", lands=r"/admin/vouchers$")
    codes = page.locator("#voucher-codes code").all_inner_texts()
    assert len(set(codes)) == 2
    rows = db.all(select(Voucher).where(Voucher.digest.in_([voucher_digest(c) for c in codes])))
    assert sorted((row.tokens, row.redeemed_at) for row in rows) == [(500, None), (500, None)]

    # invitations, on the instance where signing up needs one
    there = visit(sites.there)
    log_in(there, "skipper")
    there.page.goto("/admin/accounts")
    there.form("invite").get_by_label("Invite a").select_option("listener")
    there.press("invite", lands=r"/admin/accounts\?invitation=")
    code = there.page.locator("#invitation").inner_text().strip()
    invitation = sites.there_db.scalar(
        select(Invitation).where(Invitation.digest == secret_digest(code))
    )
    assert invitation is not None and invitation.role == "listener"
    assert invitation.used_at is None
    newcomer = visit(sites.there)
    newcomer.page.goto("/signup")
    snap(newcomer.page, "signup-invitation")
    sign_up(newcomer, "kai", invitation=code)
    kai = sites.there_db.user("kai")
    assert kai is not None and kai.status is AccountStatus.ACTIVE
    used = sites.there_db.scalar(select(Invitation.used_at).where(Invitation.id == invitation.id))
    assert used is not None


def test_artist_and_label_dashboards(
    visit: Callable[[Instance], Visit], sites: Sites, tmp_path: Path
) -> None:
    db = sites.here_db
    here = sites.here
    artist = visit(here)
    page = artist.page
    log_in(artist, "mira")
    page.goto("/dashboard")
    aurora = db.scalar(select(Artist.id).where(Artist.name == "aurora"))
    artist.form("artist-settings", artist=aurora).get_by_label(
        re.compile("I approve new followers")
    ).check()
    artist.press("artist-settings", artist=aurora, lands=r"/dashboard\?message=")
    says(page, "Saved")
    assert db.scalar(select(Artist.approves_followers).where(Artist.id == aurora)) is True

    for number, title in enumerate(("Night Ferry", "Harbour Lights"), start=1):
        audio = make_audio(tmp_path / f"0{number} - {title}.flac", "flac", seconds=2)
        form = artist.form("upload", artist="aurora")
        form.get_by_label(re.compile("Release title")).fill("Night Ferry EP")
        form.get_by_label(re.compile("Audio file")).set_input_files(str(audio))
        artist.press("upload", artist="aurora", lands=rf"/dashboard\?message=[^&]*{title[:5]}")
        says(page, "is uploaded")
    release = db.scalar(select(Release).where(Release.title == "Night Ferry EP"))
    assert release is not None and release.visibility is not Visibility.PUBLIC
    assert len(track_ids(db, "Night Ferry EP")) == 2
    artist.press("publish", release=release.id, lands=r"/dashboard\?message=")
    says(page, "Published")
    here.wait_for(rf"release {release.id} announced")  # once the worker made both ready
    assert db.scalar(select(Release.visibility).where(Release.id == release.id)) is (
        Visibility.PUBLIC
    )
    statuses = db.all(select(Track.status).where(Track.release_id == release.id))
    assert statuses == [TrackStatus.READY, TrackStatus.READY]
    page.goto("/dashboard")
    expect(page.locator(f"form[action='/dashboard/releases/{release.id}/publish']")).to_have_count(
        0
    )

    label = visit(here)
    log_in(label, "lina")
    label.page.goto("/dashboard")
    tidewater = db.scalar(select(Artist.id).where(Artist.name == "tidewater"))
    box = label.form("label-settings", artist=tidewater).get_by_label(
        re.compile("I approve new followers")
    )
    box.check()
    label.press("label-settings", artist=tidewater, lands=r"/dashboard\?message=")
    assert db.scalar(select(Artist.approves_followers).where(Artist.id == tidewater)) is True
    label.form("label-settings", artist=tidewater).get_by_label(
        re.compile("I approve new followers")
    ).uncheck()
    label.press("label-settings", artist=tidewater, lands=r"/dashboard\?message=")
    assert db.scalar(select(Artist.approves_followers).where(Artist.id == tidewater)) is False
    snap(label.page, "dashboard-label")


def test_wallet_vouchers_and_card_checkout(
    visit: Callable[[Instance], Visit], sites: Sites
) -> None:
    """The card checkout runs against `elsewhere` standing in for Stripe's API (the
    instance's `money.stripe_api_base` points there): the session is made with the
    pack's amount and the listener's account, the listener is sent to its page, and the
    signed webhook credits the wallet; a Stripe that fails gives a plain message."""
    db, stripe = sites.here_db, sites.elsewhere
    listener = visit(sites.here)
    page = listener.page
    sign_up(listener, "nils")
    page.goto("/wallet")
    start = db.wallet("nils")
    listener.form("redeem").get_by_label("Voucher code").fill(sites.vouchers.pop())
    listener.press("redeem", lands=r"/wallet\?message=")
    says(page, "Voucher redeemed")
    assert balance(page) == db.wallet("nils") == start + 1022

    stripe.checkout = "refuse"
    listener.press("checkout", pack="song", lands=r"/wallet\?error=")
    warns(page, "Stripe refused the checkout (500)")
    snap(page, "wallet-checkout-error")
    stripe.checkout = "hang up"
    listener.press("checkout", pack="song", lands=r"/wallet\?error=")
    warns(page, "Stripe could not be reached")
    assert db.wallet("nils") == start + 1022
    assert stripe.checkouts == {}

    stripe.checkout = "pay"
    listener.press("checkout", pack="song", lands=r"/wallet\?paid=1$")
    says(page, "Thank you")
    assert balance(page) == db.wallet("nils") == start + 2 * 1022
    [(checkout_id, sent)] = stripe.checkouts.items()
    assert sent["client_reference_id"] == str(db.user_id("nils"))
    assert sent["line_items[0][price_data][unit_amount]"] == "125"
    assert sent["success_url"] == f"{sites.here.base}/wallet?paid=1"
    assert db.balance("provider:stripe") == -1022
    assert checkout_id.startswith("cs_test_")


def test_track_page_library_and_playlists(visit: Callable[[Instance], Visit], sites: Sites) -> None:
    db = sites.here_db
    listener = visit(sites.here)
    page = listener.page
    sign_up(listener, "omar")
    omar = db.user_id("omar")
    _first, track = track_ids(db, "Harbour Songs")

    page.goto("/library")
    form = listener.form("make-playlist")
    form.get_by_label("New playlist").fill("Evening")
    form.get_by_label("Anybody may see it").check()
    listener.press("make-playlist", lands=r"/playlists/\d+$")
    playlist = db.scalar(select(Playlist).where(Playlist.user_id == omar))
    assert (playlist.title, playlist.visibility) == ("Evening", Visibility.PUBLIC)

    page.goto(f"/tracks/{track}")
    button = listener.locate("favourite", track=track)
    listener.press("favourite", track=track, lands=rf"/tracks/{track}$")
    expect(button).to_have_attribute("aria-pressed", "true")
    favourites = select(Favourite.track_id).where(Favourite.user_id == omar)
    assert db.all(favourites) == [track]
    listener.press("favourite", track=track, lands=rf"/tracks/{track}$")
    expect(button).to_have_attribute("aria-pressed", "false")
    assert db.all(favourites) == []
    listener.press("favourite", track=track, lands=rf"/tracks/{track}$")
    expect(button).to_have_attribute("aria-pressed", "true")
    listener.form("add-to-playlist").get_by_label("Add to playlist").select_option(label="Evening")
    listener.press("add-to-playlist", lands=rf"/tracks/{track}$")
    snap(page, "track")
    items = select(PlaylistItem).where(PlaylistItem.playlist_id == playlist.id)
    [item] = db.all(items)
    assert item.track_id == track
    page.goto(f"/playlists/{playlist.id}")
    expect(page.locator("main ol")).to_contain_text("Salt Light")
    listener.press(
        "remove-from-playlist", playlist=playlist.id, position=item.position,
        lands=rf"/playlists/{playlist.id}$",
    )  # fmt: skip
    expect(page.locator("main")).to_contain_text("No tracks yet")
    assert db.all(items) == []

    page.goto("/library")
    expect(page.locator("#favourites-heading + ol")).to_contain_text("Salt Light")
    listener.form("follow").get_by_label(re.compile("Follow an artist")).fill("aurora")
    listener.press("follow", lands=r"/library\?followed=")
    says(page, "You follow")
    follow = db.scalar(select(Follow).where(Follow.follower_name == "omar"))
    # aurora approves her followers (test_artist_and_label_dashboards set it): a listener
    # here waits for her answer like one from elsewhere
    assert (follow.followed_name, follow.state) == ("aurora", FollowState.PENDING)
    listener.press("unfollow", follow=follow.id, lands=r"/library$")
    assert db.scalar(select(Follow).where(Follow.follower_name == "omar")) is None
    expect(page.locator(f"form[action='/follows/{follow.id}/delete']")).to_have_count(0)


def test_the_player_and_the_money_it_moves(
    visit: Callable[[Instance], Visit], sites: Sites
) -> None:
    """Every control of the player on a release of two tracks: the long first one is
    paused, sought, muted and skipped early (free), the short second one heard to the end
    (charged); then the artist asks for the earnings and the admin pays them out."""
    db = sites.here_db
    aurora = db.scalar(select(Artist.id).where(Artist.name == "aurora"))
    artist = visit(sites.here)
    log_in(artist, "mira")
    artist.page.goto("/dashboard")
    artist.press("ask-payout", artist=aurora, lands=r"/dashboard\?error=")
    warns(artist.page, "payouts start at")
    assert db.all(select(Payout).where(Payout.artist_id == aurora)) == []

    listener = visit(sites.here)
    page = listener.page
    sign_up(listener, "pia")
    first, second = (str(track) for track in track_ids(db, "Harbour Songs"))
    page.goto(f"/releases/{sites.release_id}")
    start = balance(page)
    audio = "document.querySelector('#player audio')"

    def sounding(track: str) -> str:  # that track's play, heard for a moment
        return f"window.playfairPlayer.state().trackId === '{track}' && " + (
            "window.playfairPlayer.state().heardSeconds > 0"
        )

    listener.press("play", track=first)
    wait_until(page, sounding(first))
    assert player(page)["mode"] == "full"
    listener.press("player-toggle")
    wait_until(page, f"{audio}.paused")
    listener.press("player-toggle")
    wait_until(page, f"!{audio}.paused")
    listener.press("player-seek", value="7")
    wait_until(page, f"{audio}.currentTime >= 7")
    listener.press("player-mute")
    wait_until(page, f"{audio}.muted")
    expect(listener.locate("player-mute")).to_have_attribute("aria-pressed", "true")
    listener.press("player-mute")
    wait_until(page, f"!{audio}.muted")
    listener.press("player-queue")
    queue = page.locator("#pf-queue")
    expect(queue).to_be_visible()
    expect(queue.locator("button")).to_have_count(2)
    expect(queue.locator("button[aria-current=true]")).to_contain_text("Low Water")
    listener.press("player-queue-item", index=1)
    wait_until(page, sounding(second))
    listener.press("player-toggle")  # paused in its first seconds, so that…
    wait_until(page, f"{audio}.paused")
    assert player(page)["at"] < 3
    listener.press("player-previous")  # …previous goes to the track before
    wait_until(page, sounding(first))
    listener.press("player-next")
    wait_until(page, sounding(second))
    assert not player(page)["claimed"]
    snap(page, "player")
    wait_until(page, "window.playfairPlayer.state().claimed", timeout=30_000)
    assert start - balance(page) == 2  # the short track, heard; the long one, skipped, free
    pia = db.user_id("pia")
    assert db.all(select(Play.tokens).where(Play.user_id == pia, Play.tokens > 0)) == [2]

    earned = db.balance(artist_key(aurora))
    assert earned > 0
    artist.page.goto("/dashboard")
    artist.press("ask-payout", artist=aurora, lands=r"/dashboard\?message=")
    [payout] = db.all(select(Payout).where(Payout.artist_id == aurora))
    assert (payout.state, payout.tokens) == (PayoutState.REQUESTED, earned)

    admin = visit(sites.here)
    log_in(admin, "boss")
    admin.page.goto("/admin/payouts")
    admin.press("pay-payouts", lands=r"/admin/payouts\?message=")
    says(admin.page, "Paid 1 payouts")
    snap(admin.page, "admin-payouts")
    assert db.scalar(select(Payout.state).where(Payout.id == payout.id)) is PayoutState.PAID
    assert db.balance(artist_key(aurora)) == 0
    expect(admin.locate("pay-payouts")).to_be_disabled()


def test_buy_now_from_the_track_page(visit: Callable[[Instance], Visit], sites: Sites) -> None:
    """After the player's test: a purchase earns aurora more than the payout minimum, which
    that test expects her not to have reached yet."""
    db = sites.here_db
    listener = visit(sites.here)
    page = listener.page
    sign_up(listener, "bea")
    _free, track = track_ids(db, "Harbour Songs")
    start = db.wallet("bea")
    assert start < 1022  # the starter tokens do not buy a track
    page.goto(f"/tracks/{track}")
    expect(listener.locate("buy-now", track=track)).to_have_text("Buy now for 1022 tokens")
    listener.press("buy-now", track=track, lands=rf"/tracks/{track}\?error=")
    warns(page, f"your balance is too low: this costs 1022 tokens and you have {start}")
    assert db.wallet("bea") == start
    owned = select(ListenerTrack.owned_at).where(
        ListenerTrack.track_id == track, ListenerTrack.user_id == db.user_id("bea")
    )
    assert db.scalar(owned) is None

    page.goto("/wallet")
    listener.form("redeem").get_by_label("Voucher code").fill(sites.vouchers.pop())
    listener.press("redeem", lands=r"/wallet\?message=")
    page.goto(f"/tracks/{track}")
    listener.press("buy-now", track=track, lands=rf"/tracks/{track}\?message=")
    says(page, "Bought for 1022 tokens: this track is yours.")
    assert db.wallet("bea") == start
    assert db.scalar(owned) is not None
    expect(page.locator(f"[data-price-for='{track}']")).to_have_text("yours")
    expect(page.locator("#buy-now")).to_have_count(0)
    snap(page, "track-bought")
    page.goto("/wallet")
    newest = page.locator("table.history tbody tr").first
    expect(newest).to_have_attribute("data-kind", "buy")
    expect(newest.locator("td.number").first).to_have_text("-1022")


def test_oauth_consent_allows_and_denies(visit: Callable[[Instance], Visit], sites: Sites) -> None:
    """The consent page of an app registered with `playfair oauth add-client`; its
    callback is on `elsewhere`."""
    db, here = sites.here_db, sites.here
    person = visit(here)
    page = person.page
    sign_up(person, "uma")
    callback = f"{sites.elsewhere.base}/callback"
    verifier = "v" * 64
    query = {"response_type": "code", "client_id": sites.client_id, "scope": "read",
             "redirect_uri": callback, "code_challenge": pkce_challenge(verifier),
             "code_challenge_method": "S256"}  # fmt: skip
    page.goto(f"/oauth/authorize?{urlencode({**query, 'state': 's1'})}")
    expect(page.locator("h1")).to_contain_text("Pocket")
    snap(page, "consent")
    person.press("allow-app", lands=re.escape(callback + "?"))
    answer = parse_qs(urlsplit(page.url).query)
    assert answer["state"] == ["s1"]
    token = httpx.post(f"{here.base}/oauth/token", data={
        "grant_type": "authorization_code", "code": answer["code"][0], "redirect_uri": callback,
        "client_id": sites.client_id, "code_verifier": verifier})  # fmt: skip
    assert token.status_code == 200, token.text
    me = httpx.get(f"{here.base}/api/v1/me",
                   headers={"Authorization": f"Bearer {token.json()['access_token']}"})  # fmt: skip
    assert me.status_code == 200 and me.json()["username"] == "uma"
    tokens = select(AccessToken.id).where(AccessToken.user_id == db.user_id("uma"))
    assert len(db.all(tokens)) == 1

    page.goto(f"/oauth/authorize?{urlencode({**query, 'state': 's2'})}")
    person.press("deny-app", lands=re.escape(callback + "?"))
    answer = parse_qs(urlsplit(page.url).query)
    assert (answer["error"], answer["state"]) == (["access_denied"], ["s2"])
    assert len(db.all(tokens)) == 1


def test_partnerships_and_domains(visit: Callable[[Instance], Visit], sites: Sites) -> None:
    here, there = sites.here, sites.there

    def partnership(db: Database, other: Instance) -> Partnership:
        found: Partnership = db.scalar(
            select(Partnership)
            .join(RemoteActor, RemoteActor.id == Partnership.actor_id)
            .where(RemoteActor.uri == f"{other.base}/actor")
        )
        return found

    ours = visit(here)
    log_in(ours, "boss")
    ours.page.goto("/admin/federation")
    ours.form("ask-partner").get_by_label(re.compile("Instance")).fill(sites.host(there))
    ours.press("ask-partner", lands=r"/admin/federation\?message=")
    assert partnership(sites.here_db, there).we_follow is PartnerState.REQUESTED
    there.wait_for(rf"\(Follow from {re.escape(here.base)}/actor\): done: .*waiting for an admin")

    theirs = visit(there)
    log_in(theirs, "skipper")
    theirs.page.goto("/admin/federation")
    asked = partnership(sites.there_db, here)
    assert asked.they_follow is PartnerState.PENDING
    theirs.press("accept-partner", id=asked.id, lands=r"/admin/federation\?message=")
    assert partnership(sites.there_db, here).they_follow is PartnerState.ACCEPTED
    here.wait_for(rf"\(Accept from {re.escape(there.base)}/actor\): done")
    assert partnership(sites.here_db, there).we_follow is PartnerState.ACCEPTED

    theirs.form("ask-partner").get_by_label(re.compile("Instance")).fill(sites.host(here))
    theirs.press("ask-partner", lands=r"/admin/federation\?message=")
    here.wait_for(rf"\(Follow from {re.escape(there.base)}/actor\): done: .*waiting for an admin")
    ours.page.goto("/admin/federation")
    snap(ours.page, "admin-federation-partners")
    asking = partnership(sites.here_db, there)
    assert asking.they_follow is PartnerState.PENDING
    ours.press("refuse-partner", id=asking.id, lands=r"/admin/federation\?message=")
    assert partnership(sites.here_db, there).they_follow is PartnerState.REFUSED
    there.wait_for(rf"\(Reject from {re.escape(here.base)}/actor\): done")
    assert partnership(sites.there_db, here).we_follow is PartnerState.REFUSED

    policies = select(DomainPolicy.domain, DomainPolicy.policy, DomainPolicy.reason)
    form = ours.form("block-domain")
    form.get_by_label("Domain", exact=True).fill("spam.example")
    form.get_by_label(re.compile("Reason")).fill("sends spam")
    ours.press("block-domain", lands=r"/admin/federation\?message=")
    form = ours.form("allow-domain")
    form.get_by_label("Domain", exact=True).fill("friends.example")
    ours.press("allow-domain", lands=r"/admin/federation\?message=")
    with Session(sites.here_db.engine) as session:
        assert sorted(session.execute(policies).all()) == [
            ("friends.example", DomainPolicyKind.ALLOW, ""),
            ("spam.example", DomainPolicyKind.BLOCK, "sends spam"),
        ]
    ours.press("remove-domain", domain="spam.example", lands=r"/admin/federation\?message=")
    with Session(sites.here_db.engine) as session:
        assert [row.domain for row in session.execute(policies)] == ["friends.example"]
    expect(ours.page.locator("#domains-heading ~ table")).not_to_contain_text("spam.example")

    # the statements page has nothing to press; partners that just met owe nothing yet
    ours.page.goto("/admin/statements")
    expect(ours.page.locator("h1")).to_have_text("Royalty statements")
    expect(ours.page.locator("main")).to_contain_text("No statements yet.")


def test_failed_deliveries_are_replayed(visit: Callable[[Instance], Visit], sites: Sites) -> None:
    """A listener follows an account on a server whose inbox is down: the delivery fails
    for good (this instance gives up after 3 s), is replayed by the admin (and fails
    again), then, the inbox back, replayed once more and delivered."""
    db, here, fan = sites.here_db, sites.here, sites.elsewhere
    listener = visit(here)
    sign_up(listener, "vera")
    listener.page.goto("/library")
    listener.form("follow").get_by_label(re.compile("Follow an artist")).fill(f"@fan@{fan.host}")
    listener.press("follow", lands=r"/library\?followed=")
    inbox = f"{fan.fan}/inbox"
    delivery = db.scalar(select(Delivery).where(Delivery.inbox == inbox))
    failed = rf"delivery {delivery.id} of Follow to {re.escape(inbox)}: failed"
    here.wait_for(failed)
    assert db.scalar(select(Delivery.state).where(Delivery.id == delivery.id)) is (
        DeliveryState.FAILED
    )
    attempts = db.scalar(select(Delivery.attempts).where(Delivery.id == delivery.id))

    admin = visit(here)
    page = admin.page
    log_in(admin, "boss")
    page.goto("/admin/federation")
    admin.form("show-deliveries").get_by_label("State").select_option("failed")
    admin.press("show-deliveries", lands=r"/admin/federation\?state=failed")
    table = page.locator("table.deliveries, #deliveries-heading ~ table").first
    expect(table).to_contain_text(inbox)
    assert set(table.locator("tbody tr td:nth-child(4)").all_inner_texts()) == {"failed"}
    admin.press("replay-all", lands=r"/admin/federation\?message=")
    says(page, "1 deliveries queued again")
    here.wait_for_count(failed, 2)
    assert db.scalar(select(Delivery.attempts).where(Delivery.id == delivery.id)) > attempts

    fan.inbox_open = True
    page.goto("/admin/federation?state=failed")
    admin.press("replay-one", id=delivery.id, lands=r"/admin/federation\?message=")
    here.wait_for(rf"delivery {delivery.id} of Follow to {re.escape(inbox)}: delivered")
    assert db.scalar(select(Delivery.state).where(Delivery.id == delivery.id)) is (
        DeliveryState.DELIVERED
    )
    assert fan.inbox[-1]["type"] == "Follow"
    assert fan.inbox[-1]["actor"] == f"{here.base}/users/vera"
    page.goto("/admin/federation")
    snap(page, "admin-federation-deliveries")


def test_following_across_servers(
    visit: Callable[[Instance], Visit], sites: Sites, tmp_path: Path
) -> None:
    """(After test_partnerships_and_domains: here is there's partner.) Remote follow from
    an artist's page, following from here an artist there and from there an artist here
    who approves her followers, and a partner's release played in full here."""
    db, here, there = sites.here_db, sites.here, sites.there
    visitor = visit(here)
    visitor.page.goto("/artists/aurora")
    visitor.form("remote-follow").get_by_label(re.compile("enter your handle")).fill(
        f"@fan@{sites.elsewhere.host}"
    )
    visitor.press(
        "remote-follow", lands=re.escape(f"{sites.elsewhere.base}/authorize_interaction?uri=")
    )
    assert quote(f"{here.base}/artists/aurora", safe="") in visitor.page.url

    listener = visit(here)
    page = listener.page
    sign_up(listener, "wim")
    page.goto("/artists/tidewater")
    listener.press("follow-with", lands=r"/library\?followed=")
    follows = select(Follow).where(Follow.follower_name == "wim")
    [local] = db.all(follows)
    assert (local.followed_name, local.state) == ("tidewater", FollowState.ACCEPTED)

    tide = f"{there.base}/artists/tide"
    page.goto(f"/authorize_interaction?uri={quote(tide, safe='')}")
    snap(page, "authorize-interaction")
    listener.press("follow-interaction", lands=r"/library\?followed=")
    here.wait_for(rf"\(Accept from {re.escape(tide)}\): done")
    remote = db.scalar(
        select(Follow.state)
        .join(RemoteActor, RemoteActor.id == Follow.followed_actor_id)
        .where(Follow.follower_name == "wim", RemoteActor.uri == tide)
    )
    assert remote is FollowState.ACCEPTED

    tidal = visit(there)
    log_in(tidal, "tidal")
    tidal.page.goto("/dashboard")
    audio = make_audio(tmp_path / "01 - Distant.mp3", "mp3", seconds=SHORT_SECONDS)
    form = tidal.form("upload", artist="tide")
    form.get_by_label(re.compile("Release title")).fill("Far Shore")
    form.get_by_label("Publish at once").check()
    form.get_by_label(re.compile("Audio file")).set_input_files(str(audio))
    tidal.press("upload", artist="tide", lands=r"/dashboard\?message=")
    here.wait_for(rf"\(Create from {re.escape(tide)}\): done")
    page.goto("/library")
    listener.press("play-in-full", lands=r"/library$")
    [track] = db.all(select(RemoteTrack).where(RemoteTrack.title == "Distant"))
    start = balance(page)
    listener.press("play-remote", track=track.id)
    wait_until(page, "window.playfairPlayer.state().claimed", timeout=30_000)
    assert start - balance(page) == 2
    wim = db.user_id("wim")
    assert db.all(select(RemotePlay.tokens).where(RemotePlay.user_id == wim)) == [2]

    # followers from there of an artist here who approves them (set on her dashboard)
    aurora = db.scalar(select(Artist.id).where(Artist.name == "aurora"))
    assert db.scalar(select(Artist.approves_followers).where(Artist.id == aurora)) is True
    aurora_handle = f"@aurora@{sites.host(here)}"
    for name in ("tidal", "skipper"):
        follower = tidal if name == "tidal" else visit(there)
        if name == "skipper":
            log_in(follower, "skipper")
        follower.page.goto("/library")
        follower.form("follow").get_by_label(re.compile("Follow an artist")).fill(aurora_handle)
        follower.press("follow", lands=r"/library\?followed=")
        here.wait_for(rf"\(Follow from {re.escape(there.base)}/users/{name}\): done")

    def waiting(name: str) -> Follow:
        found: Follow = db.scalar(
            select(Follow)
            .join(RemoteActor, RemoteActor.id == Follow.follower_actor_id)
            .where(
                Follow.followed_name == "aurora", RemoteActor.uri == f"{there.base}/users/{name}"
            )
        )
        return found

    assert waiting("tidal").state is waiting("skipper").state is FollowState.PENDING
    artist = visit(here)
    log_in(artist, "mira")
    artist.page.goto("/dashboard")
    snap(artist.page, "dashboard-follow-requests")
    for verb, name in (("accept", "tidal"), ("reject", "skipper")):
        follow = waiting(name).id
        artist.press(f"{verb}-follower", artist=aurora, follow=follow, lands=r"/dashboard$")
    assert waiting("tidal").state is FollowState.ACCEPTED
    assert waiting("skipper").state is FollowState.REJECTED
    aurora_there = f"{here.base}/artists/aurora"
    there.wait_for(rf"\(Accept from {re.escape(aurora_there)}\): done")
    there.wait_for(rf"\(Reject from {re.escape(aurora_there)}\): done")
    states = dict(
        Session(sites.there_db.engine)
        .execute(
            select(Follow.follower_name, Follow.state)
            .join(RemoteActor, RemoteActor.id == Follow.followed_actor_id)
            .where(RemoteActor.uri == aurora_there)
        )
        .all()
    )
    assert states == {"tidal": FollowState.ACCEPTED, "skipper": FollowState.REJECTED}


def test_settings_tokens_export_and_deletion(
    visit: Callable[[Instance], Visit], sites: Sites
) -> None:
    db, here = sites.here_db, sites.here
    person = visit(here)
    page = person.page
    sign_up(person, "sol")
    page.goto("/wallet")
    person.form("redeem").get_by_label("Voucher code").fill(sites.vouchers.pop())
    person.press("redeem", lands=r"/wallet\?message=")

    page.goto("/settings")
    old_hash = db.user("sol").password_hash  # type: ignore[union-attr]
    form = person.form("change-password")
    form.get_by_label("Current password").fill(PASSWORD)
    form.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    form.get_by_label("New password again").fill(NEW_PASSWORD)
    person.press("change-password", lands=r"/settings/password$")
    says(page, "your password has been changed")
    assert db.user("sol").password_hash != old_hash  # type: ignore[union-attr]
    person.press("log-out", lands=r"/$")
    log_in(person, "sol", NEW_PASSWORD)

    page.goto("/settings")
    form = person.form("make-token")
    form.get_by_label("What it is for").fill("my script")
    form.get_by_label("write").check()
    person.press("make-token", lands=r"/settings/tokens$")
    secret = page.locator("#new-token").inner_text().strip()
    snap(page, "settings")
    token = db.scalar(select(AccessToken).where(AccessToken.user_id == db.user_id("sol")))
    assert (token.name, token.scopes, token.revoked_at) == ("my script", "read write", None)
    bearer = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(f"{here.base}/api/v1/me", headers=bearer).json()["username"] == "sol"
    page.goto("/settings")
    person.press("revoke-token", token=token.id, lands=r"/settings$")
    expect(page.locator(f"form[action='/settings/tokens/{token.id}/revoke']")).to_have_count(0)
    assert db.scalar(select(AccessToken.revoked_at).where(AccessToken.id == token.id)) is not None
    assert httpx.get(f"{here.base}/api/v1/me", headers=bearer).status_code == 401

    started = time.monotonic()
    with page.expect_download() as download:
        page.click("a[href='/settings/export']")
    assert time.monotonic() - started < ANSWER_BOUND
    document = json.loads(Path(download.value.path()).read_text())
    assert document["tables"]["users"][0]["username"] == "sol"

    lena_before = db.wallet("lena")
    form = person.form("delete-account")
    form.get_by_label(re.compile("Give them to another listener")).check()
    form.get_by_label("Their name").fill("lena")
    form.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    person.press("delete-account", lands=r"/$")
    assert db.user("sol") is None
    assert db.wallet("lena") == lena_before + 1022
    expect(page.locator("header nav")).to_contain_text("Log in")


def test_settings_app_passwords_for_subsonic_apps(
    visit: Callable[[Instance], Visit], sites: Sites
) -> None:
    """Settings, Apps: what to type into a Subsonic app, an app password made and shown
    once, used over HTTP the way the apps do (u, t = md5(password + s), s), then revoked
    and refused with Subsonic error 40."""
    db, here = sites.here_db, sites.here
    person = visit(here)
    page = person.page
    sign_up(person, "ines")
    page.goto("/settings")
    expect(page.locator("#subsonic-server")).to_have_text(here.base)
    expect(page.locator("#subsonic-user")).to_have_text("ines")
    person.form("make-app-password").get_by_label("App or device").fill("Phone")
    person.press("make-app-password", lands=r"/settings/app-passwords$")
    says(page, "The app password for Phone")
    password = page.locator("#new-app-password").inner_text().strip()
    assert re.fullmatch(r"([a-z2-9]{5}-){3}[a-z2-9]{5}", password), password
    snap(page, "settings-apps")
    row = db.scalar(select(AppPassword).where(AppPassword.user_id == db.user_id("ines")))
    assert (row.name, row.revoked_at) == ("Phone", None)
    assert password.encode() not in row.password_sealed

    def ping(salt: str) -> dict[str, Any]:
        signed = hashlib.md5((password + salt).encode(), usedforsecurity=False).hexdigest()
        query = {"u": "ines", "t": signed, "s": salt, "v": "1.16.1", "c": "tests", "f": "json"}
        answer = httpx.get(f"{here.base}/rest/ping", params=query, timeout=WAIT_MS / 1000)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()["subsonic-response"]
        return body

    assert ping("a1b2c3")["status"] == "ok"
    assert ping("d4e5f6g7")["status"] == "ok", "a fresh salt each call"
    page.goto("/settings")
    expect(page.locator("#new-app-password")).to_have_count(0)  # shown only once
    expect(page.locator("#apps li")).to_contain_text("Phone")
    person.press("revoke-app-password", app_password=row.id, lands=r"/settings(#apps)?$")
    expect(page.locator(f"form[action='/settings/app-passwords/{row.id}/revoke']")).to_have_count(0)
    assert db.scalar(select(AppPassword.revoked_at).where(AppPassword.id == row.id)) is not None
    body = ping("h8j9k0")
    assert (body["status"], body["error"]["code"]) == ("failed", 40), body


def test_the_instance_still_answers_and_its_worker_still_works(
    visit: Callable[[Instance], Visit], sites: Sites, tmp_path: Path
) -> None:
    """After everything above: the health check answers at once and the worker still
    takes a job (an upload, published when ready)."""
    for instance in (sites.here, sites.there):
        started = time.monotonic()
        health = httpx.get(f"{instance.base}/healthz", timeout=WAIT_MS / 1000)
        assert time.monotonic() - started < ANSWER_BOUND
        assert health.json() == {"status": "ok", "database": "ok"}
    artist = visit(sites.here)
    log_in(artist, "mira")
    artist.page.goto("/dashboard")
    audio = make_audio(tmp_path / "01 - Last Light.mp3", "mp3", seconds=2)
    form = artist.form("upload", artist="aurora")
    form.get_by_label(re.compile("Release title")).fill("Last Light")
    form.get_by_label("Publish at once").check()
    form.get_by_label(re.compile("Audio file")).set_input_files(str(audio))
    artist.press("upload", artist="aurora", lands=r"/dashboard\?message=")
    release = sites.here_db.scalar(select(Release.id).where(Release.title == "Last Light"))
    sites.here.wait_for(rf"release {release} announced")
    statuses = sites.here_db.all(select(Track.status).where(Track.release_id == release))
    assert statuses == [TrackStatus.READY]


def voucher_digest(code: str) -> str:
    return secret_digest(normalise_code(code))


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_actor_profile_forms(
    visit: Callable[[Instance], Visit], sites: Sites, tmp_path: Path
) -> None:
    """The artist's Profile: an avatar the worker cuts and the page then shows, links and
    choices saved, an alias on the other instance added and removed, and a move refused
    while the target does not list the artist as an alias."""
    db, here, there = sites.here_db, sites.here, sites.there
    artist = visit(here)
    page = artist.page
    log_in(artist, "mira")
    page.goto("/dashboard")
    avatar = tmp_path / "avatar.png"
    Image.new("RGB", (800, 500), (40, 120, 200)).save(avatar)
    artist.form("profile-picture", actor="aurora", role="avatar").locator(
        "input[type=file]"
    ).set_input_files(str(avatar))
    artist.press("profile-picture", actor="aurora", role="avatar", lands=r"/dashboard\?message=")
    says(page, "once it is resized")
    here.wait_for(r"avatar of aurora is ready")
    page.goto("/dashboard")
    shown = page.locator("img.avatar")
    expect(shown).to_be_visible()
    assert page.evaluate("document.querySelector('img.avatar').naturalWidth") == 400

    form = artist.form("profile-save", actor="aurora")
    form.locator("input[name=link_name_0]").fill("Bandcamp")
    form.locator("input[name=link_url_0]").fill("https://aurora.bandcamp.com/")
    form.get_by_label(re.compile("full-text search")).uncheck()
    artist.press("profile-save", actor="aurora", lands=r"/dashboard\?message=")
    says(page, "Profile saved")
    row = db.scalar(select(ActorProfile).where(ActorProfile.actor == "aurora"))
    assert row.links == [{"name": "Bandcamp", "url": "https://aurora.bandcamp.com/"}]
    assert row.discoverable is True and row.indexable is False

    tide = f"@tide@{there.base.split('://', 1)[1]}"
    artist.form("alias-add", actor="aurora").locator("input[name=account]").fill(tide)
    artist.press("alias-add", actor="aurora", lands=r"/dashboard\?message=")
    says(page, "may now move here")
    assert db.scalar(select(ActorProfile.also_known_as).where(ActorProfile.actor == "aurora")) == [
        f"{there.base}/artists/tide"
    ]
    artist.press("alias-remove", actor="aurora", lands=r"/dashboard\?message=")
    says(page, "Alias removed")
    assert db.scalar(select(ActorProfile.also_known_as).where(ActorProfile.actor == "aurora")) == []

    artist.form("move", actor="aurora").locator("input[name=account]").fill(tide)
    artist.press("move", actor="aurora", lands=r"/dashboard\?error=")
    warns(page, "does not list")
    assert db.scalar(select(ActorProfile.moved_to).where(ActorProfile.actor == "aurora")) is None
    snap(page, "dashboard-profile")
