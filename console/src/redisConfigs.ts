// The redisConfigs keys the API accepts, with their allowed values (as the API checks
// them; it answers an error naming the key for anything else).

export interface ConfigSpec {
  key: string;
  /** Allowed values, for a select; otherwise a text field with `pattern` as a hint. */
  values?: string[];
  hint: string;
  inputmode?: "numeric" | "decimal";
}

export const MAXMEMORY_POLICIES = [
  "volatile-lru",
  "noeviction",
  "allkeys-lru",
  "allkeys-lfu",
  "volatile-lfu",
  "allkeys-random",
  "volatile-random",
  "volatile-ttl",
];

export const REDIS_CONFIGS: ConfigSpec[] = [
  {
    key: "maxmemory-policy",
    values: MAXMEMORY_POLICIES,
    hint: "What Redis evicts when memory is full. volatile-lru (the default) evicts keys with a TTL, least recently used first; noeviction refuses writes instead.",
  },
  { key: "maxmemory-gb", hint: "Memory Redis may use for data, in GB (from 0.1 up to the instance size); leave empty for the whole size.", inputmode: "decimal" },
  { key: "notify-keyspace-events", hint: "Keyspace notifications: classes from KEg$lshzxetmdnA (e.g. Ex for expiry events); empty for none." },
  { key: "activedefrag", values: ["", "no", "yes"], hint: "Defragment memory in the background." },
  { key: "lfu-log-factor", hint: "LFU counter's logarithm factor: an integer ≥ 0 (Redis's default 10).", inputmode: "numeric" },
  { key: "lfu-decay-time", hint: "Minutes after which the LFU counter decays: an integer ≥ 0 (default 1).", inputmode: "numeric" },
  { key: "stream-node-max-bytes", hint: "Bytes per stream node: an integer ≥ 0 (default 4096).", inputmode: "numeric" },
  { key: "stream-node-max-entries", hint: "Entries per stream node: an integer ≥ 0 (default 100).", inputmode: "numeric" },
  { key: "timeout", hint: "Seconds an idle client stays connected (0: forever).", inputmode: "numeric" },
];
