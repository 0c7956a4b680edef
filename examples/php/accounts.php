<?php
// Administration of the PHP participant's database:
//
//   php accounts.php seed alice=10000 bob=500   create the tables, set balances (cents)
//   php accounts.php show                       print accounts and fence states as JSON
//
// The database is $PHP_PARTICIPANT_DB (default ./participant.db).

declare(strict_types=1);

require __DIR__ . '/lib.php';

$db = db();
migrate($db);
switch ($argv[1] ?? '') {
    case 'seed':
        foreach (array_slice($argv, 2) as $arg) {
            [$name, $balance] = explode('=', $arg, 2) + [1 => ''];
            if (!ctype_digit($balance)) {
                fwrite(STDERR, "seed: want name=cents, not $arg\n");
                exit(2);
            }
            run($db, 'INSERT INTO account (name, balance, frozen) VALUES (?, ?, 0) ON CONFLICT (name) DO UPDATE SET balance = excluded.balance, frozen = 0', [$name, (int) $balance]);
        }
        break;
    case 'show':
        $out = ['accounts' => [], 'fence' => []];
        foreach ($db->query('SELECT name, balance, frozen FROM account ORDER BY name', PDO::FETCH_ASSOC) as $r) {
            $out['accounts'][] = $r;
        }
        foreach ($db->query('SELECT state, tried, COUNT(*) AS n FROM settle_fence GROUP BY state, tried', PDO::FETCH_ASSOC) as $r) {
            $out['fence'][] = $r;
        }
        echo json_encode($out, JSON_PRETTY_PRINT), "\n";
        break;
    default:
        fwrite(STDERR, "usage: php accounts.php seed name=cents... | show\n");
        exit(2);
}
