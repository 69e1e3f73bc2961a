<?php
// A PHP app whose sessions live in the local hanode through phpredis's
// session handler (session.save_handler = redis, session.save_path =
// tcp://127.0.0.1:6379, set on the php command line by the test).
session_start();
$_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
if (isset($_GET['user'])) {
    $_SESSION['user'] = $_GET['user'];
}
header('Content-Type: text/plain');
echo session_id(), ' ', $_SESSION['n'], ' ', $_SESSION['user'] ?? '-', "\n";
