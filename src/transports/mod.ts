/**
 * Registers every built-in transport.
 *
 * @module
 */
import "./symlink_or_copy.ts";
import "./sftp.ts";
import "./ftp.ts";
import "./s3.ts";
import "./cf.ts";
import "./cloudfiles.ts";
