// Column values shared by every table of the ledger: times are stored as epoch milliseconds,
// NULL for "not yet".
export const dateOf = (ms: number | null): Date | undefined => (ms === null ? undefined : new Date(ms));
export const millisOf = (d: Date | undefined): number | null => (d === undefined ? null : d.getTime());
