/** A tiny typed event emitter: `on` returns the function that unsubscribes. */
export class Emitter<Events extends Record<string, unknown>> {
  private readonly handlers = new Map<keyof Events, Set<(payload: never) => void>>()

  on<K extends keyof Events> (event: K, handler: (payload: Events[K]) => void): () => void {
    let set = this.handlers.get(event)
    if (set === undefined) {
      set = new Set()
      this.handlers.set(event, set)
    }
    set.add(handler as (payload: never) => void)
    return () => this.off(event, handler)
  }

  off<K extends keyof Events> (event: K, handler: (payload: Events[K]) => void): void {
    this.handlers.get(event)?.delete(handler as (payload: never) => void)
  }

  protected emit<K extends keyof Events> (event: K, payload: Events[K]): void {
    const set = this.handlers.get(event)
    if (set === undefined) return
    for (const handler of [...set]) {
      try {
        (handler as (payload: Events[K]) => void)(payload)
      } catch (err) {
        // One faulty listener must not break the provider or the other listeners.
        console.error(`chorus: a "${String(event)}" listener threw`, err)
      }
    }
  }
}
