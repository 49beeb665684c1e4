// The agent's SQLite database inside its data directory (jobs, events, tokens, shutdown records).
export const DATABASE_FILE = "agent.db";
