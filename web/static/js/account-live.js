// followViewerEvents calls onEvent with each viewerEvents entry after
// afterSeq: the viewer's lastViewerEventSeq, read before the state on screen,
// so nothing that changed after that read is missed and nothing older is
// handled again. It listens to the shell's one feed (ctx.onViewerEvent),
// which resumes after the last seq it saw on every reconnect; without that
// it follows the feed itself. Returns the function that stops it.
const QUERY = `subscription($afterSeq: Int) { viewerEvents(afterSeq: $afterSeq) {
  seq kind generationId workId status credits { balance available held } cause purchaseId purchaseStatus
  subscriptionId subscriptionStatus planCode cancelAtPeriodEnd privacyRequestId privacyRequestStatus progress createdAt } }`;

export function followViewerEvents(ctx, afterSeq, onEvent) {
  let last = afterSeq ?? 0;
  const handle = (ev) => {
    if (!ev || ev.seq <= last) return;
    last = ev.seq;
    try {
      onEvent(ev);
    } catch (err) {
      console.warn("viewer event handler", err);
    }
  };
  if (typeof ctx.onViewerEvent === "function") return ctx.onViewerEvent(handle);
  if (!ctx.live?.subscribe) return () => {};
  return ctx.live.subscribe(QUERY, () => ({ afterSeq: last }), {
    next: (data) => handle(data?.viewerEvents),
    error() {}, // the live client shows its state (reconnecting…) itself
  });
}
