/** Test-only environment knobs (the app itself reads the environment only in src/config). */
export function postgresUrl(): string {
  return process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
}

export function postgresAvailable(): boolean {
  return process.env.POSTGRES_AVAILABLE === '1';
}
