import { describe, expect, it } from 'vitest';
import { S3Error } from './s3-errors.js';
import {
  COMPLETE_MULTIPART_BODY_LIMIT,
  DELETE_OBJECTS_BODY_LIMIT,
  parseCompleteMultipartUpload,
  parseCreateBucketConfiguration,
  parseDeleteObjects,
} from './s3-xml-bodies.js';

const ns = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"';
const declaration = '<?xml version="1.0" encoding="UTF-8"?>\n';

function refused(fn: () => unknown, code: string) {
  let error: unknown;
  try {
    fn();
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(S3Error);
  expect(error).toMatchObject({ code, status: 400 });
}

const complete = (parts: string) =>
  `${declaration}<CompleteMultipartUpload ${ns}>${parts}</CompleteMultipartUpload>`;
const part = (number: number | string, etag: string, extra = '') =>
  `<Part><ETag>${etag}</ETag>${extra}<PartNumber>${number}</PartNumber></Part>`;

describe('parseCompleteMultipartUpload', () => {
  it('reads the parts, ETags unquoted, whitespace and checksums ignored', () => {
    const body = complete(
      `\n  ${part(1, '&quot;aaa&quot;', '<ChecksumCRC32>AAAAAA==</ChecksumCRC32>')}\n  ${part(' 2 ', '"bbb"')}\n  ${part(10000, 'ccc')}\n`,
    );
    expect(parseCompleteMultipartUpload(Buffer.from(body))).toEqual([
      { partNumber: 1, etag: 'aaa' },
      { partNumber: 2, etag: 'bbb' },
      { partNumber: 10000, etag: 'ccc' },
    ]);
  });

  it('refuses parts out of ascending order', () => {
    refused(
      () => parseCompleteMultipartUpload(complete(part(2, 'a') + part(1, 'b'))),
      'InvalidPartOrder',
    );
    refused(
      () => parseCompleteMultipartUpload(complete(part(1, 'a') + part(1, 'b'))),
      'InvalidPartOrder',
    );
  });

  it('refuses a part number out of range', () => {
    refused(() => parseCompleteMultipartUpload(complete(part(0, 'a'))), 'InvalidArgument');
    refused(() => parseCompleteMultipartUpload(complete(part(10001, 'a'))), 'InvalidArgument');
  });

  it.each([
    ['no parts', complete('')],
    ['an empty root', '<CompleteMultipartUpload/>'],
    ['a non-numeric part number', complete(part('one', 'a'))],
    ['a part without an ETag', complete('<Part><PartNumber>1</PartNumber></Part>')],
    [
      'two part numbers',
      complete('<Part><PartNumber>1</PartNumber><PartNumber>2</PartNumber><ETag>a</ETag></Part>'),
    ],
    ['the wrong root', `<Delete>${part(1, 'a')}</Delete>`],
    ['two roots', complete(part(1, 'a')) + '<CompleteMultipartUpload/>'],
    ['unclosed tags', '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>'],
    ['text that is not XML', 'parts please'],
    ['an empty body', ''],
    ['an unknown entity', complete(part(1, '&nbsp;'))],
    ['a bare ampersand', complete(part(1, 'a & b'))],
    ['invalid UTF-8', Buffer.from([0x3c, 0x61, 0xff, 0x3e])],
  ])('refuses %s as MalformedXML', (_, body) => {
    refused(() => parseCompleteMultipartUpload(body), 'MalformedXML');
  });

  it('refuses a DOCTYPE, so no entity can expand', () => {
    const lol =
      '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>' +
      '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&lol2;</ETag></Part></CompleteMultipartUpload>';
    refused(() => parseCompleteMultipartUpload(lol), 'MalformedXML');
    const external =
      '<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>' + complete(part(1, '&xxe;'));
    refused(() => parseCompleteMultipartUpload(external), 'MalformedXML');
  });

  it('refuses a body over its limit', () => {
    const padding = ' '.repeat(COMPLETE_MULTIPART_BODY_LIMIT);
    refused(
      () => parseCompleteMultipartUpload(complete(part(1, 'a') + padding)),
      'MaxMessageLengthExceeded',
    );
  });
});

const del = (objects: string, quiet = '') =>
  `${declaration}<Delete ${ns}>${quiet}${objects}</Delete>`;
const object = (key: string) => `<Object><Key>${key}</Key></Object>`;

describe('parseDeleteObjects', () => {
  it('reads keys exactly: entities, character references, spaces, CDATA, digits', () => {
    const keys = [
      object('a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos;'),
      object('  spaced  '),
      object('line&#xD;&#10;break&#x1;'),
      object('caf\u00e9/\u{1F600}&#x1F601;'),
      object('<![CDATA[<raw> & ]]>'),
      object('007'),
      '<Object><Key>v</Key><VersionId>null</VersionId></Object>',
    ];
    expect(parseDeleteObjects(del(keys.join('\n'), '<Quiet>true</Quiet>'))).toEqual({
      quiet: true,
      objects: [
        { key: `a & b <c> "d" 'e'` },
        { key: '  spaced  ' },
        { key: 'line\r\nbreak\u0001' },
        { key: 'café/😀😁' },
        { key: '<raw> & ' },
        { key: '007' },
        { key: 'v', versionId: 'null' },
      ],
    });
  });

  it('is not quiet unless asked', () => {
    expect(parseDeleteObjects(del(object('k'))).quiet).toBe(false);
    expect(parseDeleteObjects(del(object('k'), '<Quiet>false</Quiet>')).quiet).toBe(false);
    refused(() => parseDeleteObjects(del(object('k'), '<Quiet>yes</Quiet>')), 'MalformedXML');
  });

  it('takes 1000 keys, not 1001 nor none', () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => object(`k${i}`)).join('');
    expect(parseDeleteObjects(del(many(1000))).objects).toHaveLength(1000);
    refused(() => parseDeleteObjects(del(many(1001))), 'MalformedXML');
    refused(() => parseDeleteObjects(del('')), 'MalformedXML');
    refused(
      () => parseDeleteObjects(del('<Object><VersionId>1</VersionId></Object>')),
      'MalformedXML',
    );
    refused(
      () => parseDeleteObjects(del('<Object><Key><Sub>x</Sub></Key></Object>')),
      'MalformedXML',
    );
  });

  it('reads 1000 keys of 1024 bytes within its limit', () => {
    const body = del(
      Array.from({ length: 1000 }, (_, i) => object(`${i}`.padEnd(1024, 'x'))).join(''),
    );
    expect(Buffer.byteLength(body)).toBeLessThan(DELETE_OBJECTS_BODY_LIMIT);
    expect(parseDeleteObjects(body).objects).toHaveLength(1000);
  });
});

describe('parseCreateBucketConfiguration', () => {
  it('accepts an empty body', () => {
    expect(parseCreateBucketConfiguration('')).toEqual({});
    expect(parseCreateBucketConfiguration(Buffer.from(' \n'))).toEqual({});
  });

  it('reads the location constraint', () => {
    const body = `<CreateBucketConfiguration ${ns}><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>`;
    expect(parseCreateBucketConfiguration(body)).toEqual({ locationConstraint: 'eu-west-1' });
    expect(parseCreateBucketConfiguration('<CreateBucketConfiguration/>')).toEqual({});
  });

  it('refuses another document', () => {
    refused(() => parseCreateBucketConfiguration('<Bucket/>'), 'MalformedXML');
    refused(() => parseCreateBucketConfiguration('eu-west-1'), 'MalformedXML');
  });
});
