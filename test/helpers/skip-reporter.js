// Says plainly, at the end of the run, when the PostgreSQL suites did not run.
class SkipReporter {
  onRunComplete() {
    if (process.env.POSTGRES_AVAILABLE !== '1') {
      process.stdout.write(
        '\nPostgreSQL suites SKIPPED: no server at ' +
          (process.env.TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/test') +
          ' (only SQLite ran). Set REQUIRE_POSTGRES=1 to make this a failure, as CI does.\n',
      );
    } else {
      process.stdout.write('\nStore and ledger suites ran on SQLite and PostgreSQL.\n');
    }
  }
}
module.exports = SkipReporter;
