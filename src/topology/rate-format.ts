/** Human-readable traffic rates for the reasons attached to adaptation decisions. */
export function formatRate(bytesPerSecond: number): string {
  const units = ['B/s', 'kB/s', 'MB/s', 'GB/s', 'TB/s'];
  let v = bytesPerSecond;
  let u = 0;
  while (Math.abs(v) >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

/** "vm3,vm7" or "vm3,vm7,vm9 and 4 more". */
export function formatList(items: readonly string[], shown = 3, total = items.length): string {
  const head = items.slice(0, shown).join(',');
  return total > shown ? `${head} and ${total - shown} more` : head;
}
