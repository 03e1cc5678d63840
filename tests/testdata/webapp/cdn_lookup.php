<?php
// What the Drupal 7 / Backdrop CDN module does in "File Conveyor mode", as a
// web server user would run it: open the synced files database with PDO,
// look files up by the keys the module builds, and run the status report's
// queries. Prints one JSON object; every failure is reported, none thrown.
//
// Usage: php cdn_lookup.php <request.json>
// request: {"root": Drupal root (the working directory, as for index.php),
//           "db": path of synced_files.db,
//           "files": [{"kind": "raw"|"public", "path": "..."}],
//           "rounds": N, "pauseMs": M}

function drupal_encode_path($path) {
  return str_replace('%2F', '/', rawurlencode($path));
}

// hook_file_url_alter: $path is relative to the Drupal root. For public://
// files it comes from the file's URL, so it is percent-encoded.
function lookup_key($file) {
  if ($file['kind'] === 'public') {
    $path = 'sites/default/files/' . drupal_encode_path($file['path']);
  } else {
    $path = $file['path'];
  }
  return realpath('.') . '/' . $path;
}

function connect($db, $readonly) {
  if (!file_exists($db) || filesize($db) == 0) {
    throw new Exception("missing or empty: $db");
  }
  $options = array(PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION);
  if ($readonly) {
    $options[PDO::SQLITE_ATTR_OPEN_FLAGS] = PDO::SQLITE_OPEN_READONLY;
  }
  return new PDO('sqlite:' . $db, null, null, $options);
}

$req = json_decode(file_get_contents($argv[1]), true);
chdir($req['root']);
$out = array('user' => posix_getpwuid(posix_geteuid())['name'], 'errors' => array(), 'rounds' => array());
$rounds = isset($req['rounds']) ? $req['rounds'] : 1;
for ($i = 0; $i < $rounds; $i++) {
  $round = array('lookups' => array());
  try {
    // The module opens the file with PDO's defaults; the web server user has read access only.
    foreach (array(false, true) as $readonly) {
      $db = connect($req['db'], $readonly);
      foreach ($req['files'] as $file) {
        $stmt = $db->prepare('SELECT url, server FROM synced_files WHERE input_file = :input_file');
        $key = lookup_key($file);
        $stmt->bindParam(':input_file', $key, PDO::PARAM_STR);
        $stmt->execute();
        $round['lookups'][$file['kind'] . ':' . $file['path']] = $stmt->fetchAll(PDO::FETCH_ASSOC);
      }
      // Status report: synced files per server below the Drupal root.
      $root = realpath('.');
      $round['counts'] = $db->query(
        "SELECT COUNT(*) AS count, server FROM synced_files WHERE input_file LIKE '$root%' GROUP BY server"
      )->fetchAll(PDO::FETCH_ASSOC);
      $db = null;
    }
    // The status report finds persistent_data.db by replacing the file name.
    $pdb = connect(str_replace('synced_files.db', 'persistent_data.db', $req['db']), true);
    $round['queued'] = (int) $pdb->query('SELECT COUNT(*) FROM pipeline_queue')->fetchColumn();
    $round['inPipeline'] = (int) $pdb->query('SELECT COUNT(*) FROM pipeline_list')->fetchColumn();
    $pdb = null;
  } catch (Exception $e) {
    $out['errors'][] = get_class($e) . ': ' . $e->getMessage();
  }
  $out['rounds'][] = $round;
  if ($i + 1 < $rounds) usleep((isset($req['pauseMs']) ? $req['pauseMs'] : 0) * 1000);
}
echo json_encode($out);
