// followViewerEvents follows the signed-in user's viewerEvents feed from
// afterSeq (the viewer's lastEventSeq read together with the state on
// screen), so nothing that changed after that read is missed and nothing
// before it is replayed. On every reconnect the live client asks for the
// variables again, and resumes after the last seq seen: no entry is lost or
// handled twice. Returns the function that stops following.
const QUERY = `subscription($afterSeq: Int) { viewerEvents(afterSeq: $afterSeq) {
  seq kind generationId workId status credits { balance available held } cause purchaseId purchaseStatus
  subscriptionId subscriptionStatus planCode cancelAtPeriodEnd privacyRequestId privacyRequestStatus progress createdAt } }`;

export function followViewerEvents(ctx, afterSeq, onEvent) {
  let last = afterSeq ?? 0;
  if (!ctx.live?.subscribe) return () => {};
  return ctx.live.subscribe(QUERY, () => ({ afterSeq: last }), {
    next(data) {
      const ev = data?.viewerEvents;
      if (!ev || ev.seq <= last) return;
      last = ev.seq;
      try {
        onEvent(ev);
      } catch (err) {
        console.warn("viewer event handler", err);
      }
    },
    error() {}, // the live client shows its state (reconnecting…) itself
  });
}
