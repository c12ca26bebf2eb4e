/** At most `size` tasks run at once; the others wait, first come first served. */
export class Slots {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly size: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active < this.size) this.active++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await task();
    } finally {
      // The slot passes straight to the next waiter, so nobody can overtake it.
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}
