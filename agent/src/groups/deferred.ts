// A promise settled from outside, once: the group barrier and the snapshot point each are one.
// A rejection nobody awaits is not an unhandled rejection (the group may fail with no waiter).
export class Deferred {
  readonly promise: Promise<void>;
  private settle: { resolve: () => void; reject: (err: unknown) => void } | undefined;
  private done = false;

  constructor() {
    this.promise = new Promise<void>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    this.promise.catch(() => {});
  }

  /** The promise, or the signal's reason once `signal` aborts first. */
  wait(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      this.promise.then(
        () => (signal.removeEventListener("abort", onAbort), resolve()),
        (err: unknown) => (signal.removeEventListener("abort", onAbort), reject(err)),
      );
    });
  }

  get settled(): boolean {
    return this.done;
  }

  resolve(): void {
    if (this.done) return;
    this.done = true;
    this.settle?.resolve();
  }

  reject(err: unknown): void {
    if (this.done) return;
    this.done = true;
    this.settle?.reject(err);
  }
}
