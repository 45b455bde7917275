// home-channel-strip: a field, the strip of channel logos with what each
// one shows now.
//
// From the channels (home-channels' items) and what is on
// (home-live-now's items, made from home-schedule):
//
//   {"channels": [{"id": "c1", "number": 1, "name": "Hearth One", "logo": "/img/channels/c1.svg"}],
//    "live": [{"channel_id": "c1", "now": {"title": "Harbour Lights", "progress_pct": 25, ...}, ...}]}
//   -> [{"id": "c1", "number": 1, "name": "Hearth One", "logo": "/img/channels/c1.svg",
//        "link": "/live/c1", "on_now": "Harbour Lights", "progress_pct": 25}]
//
// A channel off the air, or with live null (the schedule failed), shows
// "on_now": null.

exports.handler = async (event) => {
  const live = new Map((event.live ?? []).map((l) => [l.channel_id, l]));
  return [...event.channels]
    .sort((a, b) => a.number - b.number)
    .map((c) => {
      const now = live.get(c.id)?.now ?? null;
      return {
        id: c.id,
        number: c.number,
        name: c.name,
        logo: c.logo,
        link: `/live/${c.id}`,
        on_now: now?.title ?? null,
        progress_pct: now?.progress_pct ?? null,
      };
    });
};
