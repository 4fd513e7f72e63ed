// A Subsonic app's session against a running playfair, through the npm `subsonic-api`
// client (as an app uses it: its own URLs, salts and tokens). tests/test_subsonic_clients.py
// runs it with Debian's node and checks the JSON it prints:
//
//   node scenario.mjs main CONFIG_JSON      browse, search, star, a playlist, ten plays
//   node scenario.mjs refused CONFIG_JSON   credentials that must be refused (code 40)
//
// CONFIG_JSON: {"url", "username", "password" (an app password), "apiKey",
//               "broke": an API key of a listener without balance}
import { createHash } from "node:crypto";
import { SubsonicAPI } from "subsonic-api";

const [phase, configText] = process.argv.slice(2);
const config = JSON.parse(configText);

const byPassword = new SubsonicAPI({
  url: config.url,
  auth: { username: config.username, password: config.password },
});
// the API key over OpenSubsonic's formPost: the other way an app may send its calls
const byKey = new SubsonicAPI({ url: config.url, auth: { apiKey: config.apiKey }, post: true });

function check(answer, what) {
  if (answer?.status !== "ok") {
    throw new Error(`${what}: ${JSON.stringify(answer)}`);
  }
  return answer;
}

// the whole body, as a player that listens to the end reads it; a player plays what
// it fetched, so the next listening starts once the song's length has passed (the server
// takes a request from the start within that time for the same listening)
async function listen(api, id, seconds = 0) {
  const began = Date.now();
  const response = await api.stream({ id });
  const body = Buffer.from(await response.arrayBuffer());
  const rest = began + seconds * 1000 - Date.now();
  if (rest > 0) await new Promise((resolve) => setTimeout(resolve, rest));
  return {
    status: response.status,
    contentType: response.headers.get("content-type"),
    contentLength: Number(response.headers.get("content-length")),
    bytes: body.length,
    sha256: createHash("sha256").update(body).digest("hex"),
  };
}

async function main() {
  const out = {};
  out.ping = [check(await byPassword.ping(), "ping (app password)").status,
              check(await byKey.ping(), "ping (API key)").status];
  const artists = check(await byPassword.getArtists(), "getArtists").artists;
  const viaKey = check(await byKey.getArtists(), "getArtists (API key)").artists;
  out.sameArtistsBothWays = JSON.stringify(artists) === JSON.stringify(viaKey);
  const all = (artists.index ?? []).flatMap((index) => index.artist ?? []);
  const aurora = all.find((artist) => artist.name === config.artistName);
  out.artistId = aurora.id;
  const artist = check(await byPassword.getArtist({ id: aurora.id }), "getArtist").artist;
  out.albumIds = (artist.album ?? []).map((album) => album.id);
  const album = check(await byPassword.getAlbum({ id: out.albumIds[0] }), "getAlbum").album;
  out.songs = (album.song ?? []).map((song) => ({ id: song.id, title: song.title, duration: song.duration }));
  const paid = out.songs.find((song) => song.title === config.paidTitle);
  out.songId = paid.id;
  const newest = check(await byKey.getAlbumList2({ type: "newest" }), "getAlbumList2").albumList2;
  out.newestAlbumIds = (newest.album ?? []).map((item) => item.id);
  const found = check(await byKey.search3({ query: config.paidTitle }), "search3").searchResult3;
  out.searchSongIds = (found.song ?? []).map((song) => song.id);

  check(await byPassword.star({ id: paid.id }), "star");
  const starred = check(await byPassword.getStarred2(), "getStarred2").starred2;
  out.starredSongIds = (starred.song ?? []).map((song) => song.id);

  const made = check(
    await byPassword.createPlaylist({ name: "For the road", songId: [paid.id] }),
    "createPlaylist",
  ).playlist;
  const lists = check(await byPassword.getPlaylists(), "getPlaylists").playlists;
  out.playlistNames = (lists.playlist ?? []).map((item) => item.name);
  const list = check(await byPassword.getPlaylist({ id: made.id }), "getPlaylist").playlist;
  out.playlistSongIds = (list.entry ?? []).map((entry) => entry.id);

  // ten plays of the paid track, each heard to the end and scrobbled, both ways in turn
  out.plays = [];
  for (let number = 0; number < 10; number++) {
    const api = number % 2 === 0 ? byPassword : byKey;
    const heard = await listen(api, paid.id, paid.duration);
    heard.scrobble = check(
      await api.scrobble({ id: paid.id, submission: true, time: Date.now() }),
      "scrobble",
    ).status;
    out.plays.push(heard);
  }

  // a listener whose balance covers no play: the preview
  const broke = new SubsonicAPI({ url: config.url, auth: { apiKey: config.broke } });
  out.preview = await listen(broke, paid.id);
  return out;
}

async function refused() {
  const out = {};
  const wrong = new SubsonicAPI({
    url: config.url,
    auth: { username: config.username, password: `${config.password}x` },
  });
  out.wrongPassword = (await wrong.ping()).error?.code ?? null;
  // the old app password, after it was revoked
  out.revoked = (await byPassword.ping()).error?.code ?? null;
  // a token made with one salt, sent with another: what a replayed or altered URL does
  const tampered = new SubsonicAPI({
    url: config.url,
    auth: { username: config.username, password: config.current },
    fetch: (url, options) => {
      const changed = new URL(url);
      changed.searchParams.set("s", `${changed.searchParams.get("s")}0`);
      return fetch(changed.toString(), options);
    },
  });
  out.badSalt = (await tampered.ping()).error?.code ?? null;
  // and the same app password untampered still works: the refusals were for cause
  const fine = new SubsonicAPI({
    url: config.url,
    auth: { username: config.username, password: config.current },
  });
  out.current = (await fine.ping()).status;
  return out;
}

const result = phase === "main" ? await main() : await refused();
process.stdout.write(JSON.stringify(result));
