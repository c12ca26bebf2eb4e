import { describe, expect, it } from 'vitest';
import { UsageError, parseClusterCommand } from './options.js';

const parse = (line: string) => parseClusterCommand(line.split(' ').filter(Boolean));

describe('parseClusterCommand', () => {
  it('reads each command with its node id and flags', () => {
    expect(parse('show')).toEqual({ name: 'show', json: false });
    expect(parse('show --json')).toEqual({ name: 'show', json: true });
    expect(parse('add node4 --url http://10.0.0.4:9001/ --zone b --weight 2.5')).toEqual({
      name: 'add',
      id: 'node4',
      url: 'http://10.0.0.4:9001',
      zone: 'b',
      weight: 2.5,
      check: true,
    });
    expect(parse('add node4 --no-check --url http://h:1')).toMatchObject({
      zone: undefined,
      weight: undefined,
      check: false,
    });
    expect(parse('set node2 --weight 3')).toEqual({
      name: 'set',
      id: 'node2',
      url: undefined,
      zone: undefined,
      weight: 3,
    });
    expect(parse('drain node2')).toEqual({ name: 'drain', id: 'node2' });
    expect(parse('undrain node2')).toEqual({ name: 'undrain', id: 'node2' });
    expect(parse('remove node2 --force')).toEqual({ name: 'remove', id: 'node2', force: true });
    expect(parse('help')).toBe('help');
    expect(parse('--help')).toBe('help');
  });

  it('refuses anything else, saying what is wrong', () => {
    const refused: [string, RegExp][] = [
      ['', /a command is needed/],
      ['grow node1', /unknown command "grow"/],
      ['drain', /drain: which node\?/],
      ['drain node1 node2', /one node id, not 2/],
      ['drain node1 --force', /Unknown option '--force'/],
      ['show node1', /show: unexpected node1/],
      ['add node4', /--url <http:\/\/host:port> is required/],
      ['add node4 --url 10.0.0.4:9001', /--url: "10.0.0.4:9001" is not http\(s\):\/\/host:port/],
      ['add node4 --url http://h:1 --weight 0', /--weight: "0" is not a number above 0/],
      ['add node4 --url http://h:1 --weight two', /--weight: "two"/],
      ['set node1', /give at least one of --url, --zone, --weight/],
      ['remove node1 --url http://h:1', /Unknown option '--url'/],
    ];
    for (const [line, message] of refused) {
      expect(() => parse(line), line).toThrow(UsageError);
      expect(() => parse(line), line).toThrow(message);
    }
  });
});
