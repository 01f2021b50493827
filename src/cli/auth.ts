/**
 * etcdctl's auth commands: user (user_command.go), role (role_command.go) and auth
 * enable|disable|status (auth_command.go), with etcdctl's texts.
 */
import type { Command } from 'commander';
import { prefixEnd } from '../client/requests.js';
import { common, isClientError, readStdin, run, UsageError, type Common } from './command.js';
import { goJson, oe, out, printRole } from './printers.js';

/** A password from the first line of stdin (etcdctl's --interactive=false). */
async function passwordFromStdin(): Promise<string> {
  const line = (await readStdin()).split('\n')[0]!.replace(/\r$/, '');
  if (line === '') throw new UsageError('empty password');
  return line;
}

/** etcdctl's permRange: the key and range end of --prefix / --from-key / [endkey]. */
function permRange(key: string, end: string | undefined, o: { prefix?: boolean; fromKey?: boolean }): { key: Buffer; rangeEnd: Buffer } {
  if (o.prefix && o.fromKey) throw new UsageError('--from-key and --prefix flags are mutually exclusive');
  if (key === '') return { key: Buffer.from([0]), rangeEnd: o.prefix || o.fromKey ? Buffer.from([0]) : Buffer.alloc(0) };
  if (end !== undefined) {
    if (o.prefix) throw new UsageError('unexpected endkey argument with --prefix flag');
    if (o.fromKey) throw new UsageError('unexpected endkey argument with --from-key flag');
    return { key: Buffer.from(key), rangeEnd: Buffer.from(end) };
  }
  const k = Buffer.from(key);
  return { key: k, rangeEnd: o.prefix ? prefixEnd(k) : o.fromKey ? Buffer.from([0]) : Buffer.alloc(0) };
}

export function registerAuth(program: Command): void {
  const user = program.command('user').description('user commands: add, get, list, delete, passwd, grant-role, revoke-role');
  common(user.command('add').description('add a user').argument('<name>', 'user name, or user:password'))
    .option('--interactive <bool>', 'false: read the password from stdin', 'true')
    .option('--new-user-password <password>', 'the password')
    .option('--no-password', 'a user without password (a client certificate\'s CN authenticates it)')
    .action((arg: string, o: Common & { interactive: string; newUserPassword?: string }) =>
      run(o, async (c) => {
        // commander's --no-password sets `password: false` (and --password <p> a string).
        const noPassword = (o.password as unknown) === false;
        let name = arg;
        let password = o.newUserPassword;
        const i = arg.indexOf(':');
        if (!noPassword && password === undefined && i >= 0) {
          name = arg.slice(0, i);
          password = arg.slice(i + 1);
        }
        if (name === '') throw new UsageError('empty user name is not allowed');
        if (!noPassword && password === undefined) password = await passwordFromStdin();
        await c.userAdd(name, password ?? '', { noPassword });
        return () => out(`User ${name} created`);
      }),
    );
  common(user.command('get').description('a user\'s roles').argument('<name>'))
    .option('--detail', 'show the permissions of the roles')
    .action((name: string, o: Common & { detail?: boolean }) =>
      run(o, async (c) => {
        const roles = await c.userGet(name);
        const detail = o.detail ? await Promise.all(roles.map((r) => c.roleGet(r))) : [];
        return () => {
          out(`User: ${name}`);
          if (o.detail) {
            roles.forEach((r, i) => {
              out('');
              printRole(r, detail[i]!);
            });
          } else out(`Roles:${roles.map((r) => ` ${r}`).join('')}`);
        };
      }),
    );
  common(user.command('list').description('list the users')).action((o: Common) =>
    run(o, async (c) => {
      const users = await c.userList();
      return () => users.forEach((u) => out(u));
    }),
  );
  common(user.command('delete').description('delete a user').argument('<name>')).action((name: string, o: Common) =>
    run(o, async (c) => {
      await c.userDelete(name);
      return () => out(`User ${name} deleted`);
    }),
  );
  common(user.command('passwd').description('change a user\'s password (read from stdin)').argument('<name>'))
    .option('--interactive <bool>', 'false: read the password from stdin', 'true')
    .action((name: string, o: Common) =>
      run(o, async (c) => {
        await c.userChangePassword(name, await passwordFromStdin());
        return () => out('Password updated');
      }),
    );
  common(user.command('grant-role').description('grant a role to a user').argument('<name>').argument('<role>')).action((name: string, role: string, o: Common) =>
    run(o, async (c) => {
      await c.userGrantRole(name, role);
      return () => out(`Role ${role} is granted to user ${name}`);
    }),
  );
  common(user.command('revoke-role').description('revoke a role from a user').argument('<name>').argument('<role>')).action((name: string, role: string, o: Common) =>
    run(o, async (c) => {
      await c.userRevokeRole(name, role);
      return () => out(`Role ${role} is revoked from user ${name}`);
    }),
  );

  const role = program.command('role').description('role commands: add, get, list, delete, grant-permission, revoke-permission');
  common(role.command('add').description('add a role').argument('<name>')).action((name: string, o: Common) =>
    run(o, async (c) => {
      await c.roleAdd(name);
      return () => out(`Role ${name} created`);
    }),
  );
  common(role.command('get').description('a role\'s permissions').argument('<name>')).action((name: string, o: Common) =>
    run(o, async (c) => {
      const perms = await c.roleGet(name);
      return () => printRole(name, perms);
    }),
  );
  common(role.command('list').description('list the roles')).action((o: Common) =>
    run(o, async (c) => {
      const roles = await c.roleList();
      return () => roles.forEach((r) => out(r));
    }),
  );
  common(role.command('delete').description('delete a role').argument('<name>')).action((name: string, o: Common) =>
    run(o, async (c) => {
      await c.roleDelete(name);
      return () => out(`Role ${name} deleted`);
    }),
  );
  common(role.command('grant-permission').description('grant a permission (read, write or readwrite) on a key, [key, endkey), a prefix or everything from a key').argument('<role>').argument('<type>').argument('<key>').argument('[endkey]'))
    .option('--prefix', 'a prefix permission')
    .option('--from-key', 'every key from <key> on (byte order)')
    .action((name: string, type: string, key: string, end: string | undefined, o: Common & { prefix?: boolean; fromKey?: boolean }) =>
      run(o, async (c) => {
        const permType = type.toUpperCase();
        if (permType !== 'READ' && permType !== 'WRITE' && permType !== 'READWRITE') throw new UsageError(`invalid permission type ${type}`);
        const r = permRange(key, end, o);
        await c.roleGrantPermission(name, permType, r.key, r.rangeEnd);
        return () => out(`Role ${name} updated`);
      }),
    );
  common(role.command('revoke-permission').description('revoke a permission on a key, a range, a prefix or from a key').argument('<role>').argument('<key>').argument('[endkey]'))
    .option('--prefix', 'a prefix permission')
    .option('--from-key', 'every key from <key> on (byte order)')
    .action((name: string, key: string, end: string | undefined, o: Common & { prefix?: boolean; fromKey?: boolean }) =>
      run(o, async (c) => {
        const r = permRange(key, end, o);
        await c.roleRevokePermission(name, r.key, r.rangeEnd);
        const k = r.key.toString();
        const e = r.rangeEnd.toString();
        return () => out(r.rangeEnd.length === 0 ? `Permission of key ${k} is revoked from role ${name}` : e !== '\0' ? `Permission of range [${k}, ${e}) is revoked from role ${name}` : `Permission of range [${k}, <open ended> is revoked from role ${name}`);
      }),
    );

  const auth = program.command('auth').description('auth commands: enable, disable, status');
  common(auth.command('enable').description('enable authentication (the root user must exist; it is given the root role as etcdctl does)')).action((o: Common) =>
    run(o, async (c) => {
      try {
        await c.authEnable();
      } catch (e) {
        // etcdctl grants root the root role and tries again.
        if (!isClientError(e) || e.details !== 'etcdserver: root user does not have root role') throw e;
        await c.userGrantRole('root', 'root');
        await c.authEnable();
      }
      return () => out('Authentication Enabled');
    }),
  );
  common(auth.command('disable').description('disable authentication')).action((o: Common) =>
    run(o, async (c) => {
      await c.authDisable();
      return () => out('Authentication Disabled');
    }),
  );
  common(auth.command('status').description('whether authentication is on, and the auth revision (etcdctl 3.5\'s output)')).action((o: Common) =>
    run(o, async (c, json) => {
      const s = await c.authStatus();
      return () => (json ? out(goJson({ enabled: oe(s.enabled), authRevision: oe(s.authRevision) })) : (out(`Authentication Status: ${s.enabled}`), out(`AuthRevision: ${s.authRevision}`)));
    }),
  );
}
