using Sd.Loaders.IO;
using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Sd.Loaders.Npy;

/// <summary>
/// Reads and writes NumPy .npy files (format 1.0, 2.0 and 3.0; little-endian float32, float16, int64, int32; C order).
/// Reading is strict: anything unexpected is an <see cref="InvalidFileException"/> naming the file and the problem,
/// and no buffer is sized from a header number before that number has been checked.
/// </summary>
public static class NpyFile
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>Real headers are under 1 KiB; the cap bounds what an unchecked length can make us allocate.</summary>
    private const int MaxHeaderLength = 1 << 20;

    /// <summary>numpy aligns the data to 64 bytes (np.lib.format.ARRAY_ALIGN) so it can be memory-mapped.</summary>
    private const int ArrayAlign = 64;

    /// <summary>numpy ≥ 1.24 pads the header so axis 0 can grow in place (np.lib.format.GROWTH_AXIS_MAX_DIGITS).</summary>
    private const int GrowthAxisMaxDigits = 21;

    private const string SupportedDescrs = "<f4, <f2, <i8, <i4";

    /// <summary>Whether a file's first bytes (see <see cref="InputFile.ReadHead"/>) are the .npy magic.</summary>
    public static bool HasMagic(ReadOnlySpan<byte> head) => head.StartsWith(Magic);

    public static NpyArray Read(string path)
    {
        InputFile.Check(path, ".npy file");
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
        return Read(stream, path);
    }

    /// <summary>
    /// Reads a float32 or float16 array as float32 values (latents, noise, text context); any other dtype is an
    /// <see cref="InvalidFileException"/> naming the file.
    /// </summary>
    public static float[] ReadFloat32(string path, out int[] shape) =>
        ReadEither(path, NpyDType.Float32, NpyDType.Float16, out shape).ToFloat32();

    /// <summary>Reads an int64 or int32 array (token ids) as int64 values; any other dtype is refused naming the file.</summary>
    public static long[] ReadInt64(string path, out int[] shape) =>
        ReadEither(path, NpyDType.Int64, NpyDType.Int32, out shape).ToInt64();

    private static NpyArray ReadEither(string path, NpyDType wide, NpyDType narrow, out int[] shape)
    {
        NpyArray array = Read(path);
        if (array.DType != wide && array.DType != narrow)
        {
            throw Invalid(path, $"expected {NpyArray.DTypeName(wide)} or {NpyArray.DTypeName(narrow)} data, found {NpyArray.DTypeName(array.DType)}");
        }
        shape = array.Shape;
        return array;
    }

    /// <param name="nameForErrors">The file name put in error messages.</param>
    public static NpyArray Read(Stream stream, string nameForErrors)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(nameForErrors);

        Span<byte> preamble = stackalloc byte[8];
        int got = stream.ReadAtLeast(preamble, preamble.Length, throwOnEndOfStream: false);
        if (!HasMagic(preamble[..got]))
            throw Invalid(nameForErrors, "not a .npy file (bad magic)");
        if (got < preamble.Length)
            throw Invalid(nameForErrors, "truncated header: the file ends inside the format version");

        int major = preamble[6], minor = preamble[7];
        if (minor != 0 || major is < 1 or > 3)
            throw Invalid(nameForErrors, $"unsupported .npy format version {major}.{minor}: expected 1.0, 2.0 or 3.0");

        // Version 1.0 stores the header length in 2 bytes; 2.0 and 3.0 use 4 bytes.
        Span<byte> lengthBytes = stackalloc byte[major == 1 ? 2 : 4];
        if (stream.ReadAtLeast(lengthBytes, lengthBytes.Length, throwOnEndOfStream: false) < lengthBytes.Length)
            throw Invalid(nameForErrors, "truncated header: the file ends inside the header length");
        long headerLength = major == 1
            ? BinaryPrimitives.ReadUInt16LittleEndian(lengthBytes)
            : BinaryPrimitives.ReadUInt32LittleEndian(lengthBytes);
        if (headerLength > MaxHeaderLength)
            throw Invalid(nameForErrors, $"header length {headerLength} exceeds the {MaxHeaderLength}-byte limit");
        if (stream.CanSeek && headerLength > stream.Length - stream.Position)
        {
            throw Invalid(nameForErrors,
                $"truncated header: header length {headerLength} runs past the end of the file " +
                $"({stream.Length - stream.Position} bytes left)");
        }

        var headerBytes = new byte[headerLength];
        int headerRead = stream.ReadAtLeast(headerBytes, headerBytes.Length, throwOnEndOfStream: false);
        if (headerRead < headerBytes.Length)
            throw Invalid(nameForErrors, $"truncated header: expected {headerLength} bytes, the file has {headerRead}");

        NpyHeader header = new Parser(DecodeHeader(headerBytes, major, nameForErrors), nameForErrors).ParseDict();
        NpyDType dtype = ParseDescr(header.Descr, nameForErrors);
        if (header.FortranOrder)
        {
            throw Invalid(nameForErrors,
                "fortran_order is True (column-major data); only C order (row-major) arrays are supported");
        }
        string? shapeProblem = NpyArray.CheckShape(header.Shape, dtype, out long count);
        if (shapeProblem != null)
            throw Invalid(nameForErrors, shapeProblem);

        // CheckShape capped this at Array.MaxLength, so it fits in an int.
        int dataLength = (int)(count * NpyArray.ItemSize(dtype));
        string needs = $"shape {NpyArray.FormatShape(header.Shape)} {NpyArray.DTypeName(dtype)} needs {dataLength}";
        if (stream.CanSeek && stream.Length - stream.Position != dataLength)
            throw Invalid(nameForErrors, $"data is {stream.Length - stream.Position} bytes, {needs}");

        byte[] data = ReadUpTo(stream, dataLength, initialCapacity: stream.CanSeek ? dataLength : 1 << 20);
        if (data.Length < dataLength)
            throw Invalid(nameForErrors, $"data is {data.Length} bytes, {needs}");
        if (stream.ReadByte() != -1)
            throw Invalid(nameForErrors, $"data is more than {dataLength} bytes (trailing bytes), {needs}");

        return new NpyArray(dtype, header.Shape, data);
    }

    /// <summary>
    /// Writes atomically: the bytes go to a temporary file in the same directory that then replaces
    /// <paramref name="path"/>, so a crash or error never leaves a half-written file behind.
    /// </summary>
    public static void Write(string path, NpyArray array)
    {
        ArgumentNullException.ThrowIfNull(array);
        AtomicFile.Write(path, stream => Write(stream, array));
    }

    /// <summary>Writes format 1.0 with exactly the header bytes numpy.save produces for the same array.</summary>
    public static void Write(Stream stream, NpyArray array)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(array);
        stream.Write(BuildHeader(array.DType, array.Shape));
        stream.Write(array.Data);
    }

    private static byte[] BuildHeader(NpyDType dtype, int[] shape)
    {
        var dict = new StringBuilder()
            .Append("{'descr': '").Append(Descr(dtype))
            .Append("', 'fortran_order': False, 'shape': ").Append(NpyArray.FormatShape(shape)).Append(", }");
        if (shape.Length > 0)
            dict.Append(' ', GrowthAxisMaxDigits - shape[0].ToString(CultureInfo.InvariantCulture).Length);

        // Magic + version + 2-byte length + dict + '\n' is padded with spaces to a multiple of 64. Like numpy, a
        // preamble that is already aligned still gets a full 64 bytes of padding. MaxRank keeps this under 64 KiB.
        int dictAndNewline = dict.Length + 1;
        int padding = ArrayAlign - (Magic.Length + 4 + dictAndNewline) % ArrayAlign;
        int headerLength = dictAndNewline + padding;

        var bytes = new byte[Magic.Length + 4 + headerLength];
        Magic.CopyTo(bytes, 0);
        bytes[6] = 1;
        bytes[7] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), checked((ushort)headerLength));
        int written = Encoding.ASCII.GetBytes(dict.ToString(), bytes.AsSpan(10));
        bytes.AsSpan(10 + written, padding).Fill((byte)' ');
        bytes[^1] = (byte)'\n';
        return bytes;
    }

    private static string Descr(NpyDType dtype) => dtype switch
    {
        NpyDType.Float32 => "<f4",
        NpyDType.Float16 => "<f2",
        NpyDType.Int64 => "<i8",
        NpyDType.Int32 => "<i4",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown NpyDType"),
    };

    private static NpyDType ParseDescr(string descr, string name) => descr switch
    {
        "<f4" => NpyDType.Float32,
        "<f2" => NpyDType.Float16,
        "<i8" => NpyDType.Int64,
        "<i4" => NpyDType.Int32,
        // '=' (native order of whichever machine wrote it) never comes from numpy.save, so it is refused too.
        _ when descr.StartsWith('>') => throw Invalid(name,
            $"big-endian dtype '{descr}' is not supported: expected one of {SupportedDescrs}"),
        _ => throw Invalid(name, $"unsupported dtype '{descr}': expected one of {SupportedDescrs}"),
    };

    /// <summary>Versions 1.0 and 2.0 have an ASCII (numpy: latin-1) header, 3.0 a UTF-8 one.</summary>
    private static string DecodeHeader(byte[] bytes, int major, string name)
    {
        if (major < 3)
        {
            foreach (byte b in bytes)
            {
                if (b > 0x7F)
                    throw Invalid(name, "header is not ASCII");
            }
            return Encoding.ASCII.GetString(bytes);
        }
        try
        {
            return new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            throw new InvalidFileException(name, "header is not valid UTF-8", e);
        }
    }

    /// <summary>
    /// Reads up to <paramref name="limit"/> bytes, growing the buffer only as data actually arrives, so a lying
    /// header on a non-seekable stream cannot force a huge allocation. Returns fewer bytes if the stream ends.
    /// </summary>
    private static byte[] ReadUpTo(Stream stream, int limit, int initialCapacity)
    {
        var buffer = new byte[Math.Min(limit, initialCapacity)];
        int filled = 0;
        while (true)
        {
            if (filled == buffer.Length)
            {
                if (filled == limit)
                    break;
                Array.Resize(ref buffer, (int)Math.Min(limit, buffer.Length * 2L));
            }
            int n = stream.Read(buffer, filled, buffer.Length - filled);
            if (n == 0)
                break;
            filled += n;
        }
        if (filled != buffer.Length)
            Array.Resize(ref buffer, filled);
        return buffer;
    }

    private static InvalidFileException Invalid(string name, string problem) => new(name, problem);

    /// <summary>The three entries of a .npy header dict.</summary>
    private sealed record NpyHeader(string Descr, bool FortranOrder, int[] Shape);

    /// <summary>
    /// Parses the Python dict literal numpy writes, e.g. <c>{'descr': '&lt;f4', 'fortran_order': False,
    /// 'shape': (2, 3), }</c>: exactly these three keys in any order, whitespace between tokens, optional trailing
    /// commas, and only the value forms those keys can take. Anything else is refused rather than guessed at.
    /// </summary>
    private sealed class Parser(string text, string name)
    {
        private int _pos;

        public NpyHeader ParseDict()
        {
            string? descr = null;
            bool? fortranOrder = null;
            int[]? shape = null;

            SkipWhitespace();
            Expect('{');
            while (true)
            {
                SkipWhitespace();
                if (TryConsume('}'))
                    break;
                int keyAt = _pos;
                string key = ParseString();
                SkipWhitespace();
                Expect(':');
                SkipWhitespace();
                bool duplicate;
                switch (key)
                {
                    case "descr":
                        duplicate = descr != null;
                        descr = ParseString();
                        break;
                    case "fortran_order":
                        duplicate = fortranOrder != null;
                        fortranOrder = ParseBool();
                        break;
                    case "shape":
                        duplicate = shape != null;
                        shape = ParseShape();
                        break;
                    default:
                        throw Malformed($"unexpected key '{key}' (expected descr, fortran_order and shape)", keyAt);
                }
                if (duplicate)
                    throw Malformed($"duplicate key '{key}'", keyAt);
                SkipWhitespace();
                if (TryConsume('}'))
                    break;
                Expect(',');
            }
            SkipWhitespace();
            if (_pos != text.Length)
                throw Malformed("unexpected text after the dictionary", _pos);

            if (descr == null)
                throw Malformed("missing key 'descr'", _pos);
            if (fortranOrder == null)
                throw Malformed("missing key 'fortran_order'", _pos);
            if (shape == null)
                throw Malformed("missing key 'shape'", _pos);
            return new NpyHeader(descr, fortranOrder.Value, shape);
        }

        /// <summary>A quoted string without escapes: no valid descr or key needs one.</summary>
        private string ParseString()
        {
            int start = _pos;
            if (_pos >= text.Length || (text[_pos] != '\'' && text[_pos] != '"'))
                throw Malformed("expected a quoted string", _pos);
            char quote = text[_pos++];
            int contentStart = _pos;
            while (_pos < text.Length && text[_pos] != quote)
            {
                if (text[_pos] is '\\' or '\n')
                    throw Malformed("escape sequences and line breaks in strings are not supported", _pos);
                _pos++;
            }
            if (_pos >= text.Length)
                throw Malformed("unterminated string", start);
            return text[contentStart.._pos++];
        }

        private bool ParseBool()
        {
            if (TryConsumeWord("True"))
                return true;
            if (TryConsumeWord("False"))
                return false;
            throw Malformed("expected True or False", _pos);
        }

        /// <summary>A tuple of integers: (), (3,), (2, 3) or (2, 3,). (3) is an int in Python, not a tuple.</summary>
        private int[] ParseShape()
        {
            int start = _pos;
            Expect('(');
            var dims = new List<int>();
            SkipWhitespace();
            if (TryConsume(')'))
                return [];
            while (true)
            {
                dims.Add(ParseInt());
                SkipWhitespace();
                if (TryConsume(')'))
                {
                    if (dims.Count == 1)
                        throw Malformed("shape is not a tuple (a one-element tuple needs a trailing comma)", start);
                    return [.. dims];
                }
                Expect(',');
                SkipWhitespace();
                if (TryConsume(')'))
                    return [.. dims];
            }
        }

        /// <summary>An optionally negative decimal integer; the caller reports negative dimensions.</summary>
        private int ParseInt()
        {
            int start = _pos;
            bool negative = TryConsume('-');
            int digitsStart = _pos;
            while (_pos < text.Length && char.IsAsciiDigit(text[_pos]))
                _pos++;
            ReadOnlySpan<char> digits = text.AsSpan(digitsStart, _pos - digitsStart);
            if (digits.IsEmpty)
                throw Malformed("expected an integer", start);
            if (!int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out int value))
                throw Malformed($"dimension {text[start.._pos]} is too large (at most {int.MaxValue})", start);
            return negative ? -value : value;
        }

        private void SkipWhitespace()
        {
            while (_pos < text.Length && text[_pos] is ' ' or '\t' or '\n' or '\r')
                _pos++;
        }

        private bool TryConsume(char c)
        {
            if (_pos < text.Length && text[_pos] == c)
            {
                _pos++;
                return true;
            }
            return false;
        }

        private bool TryConsumeWord(string word)
        {
            if (string.CompareOrdinal(text, _pos, word, 0, word.Length) != 0)
                return false;
            int end = _pos + word.Length;
            if (end < text.Length && (char.IsAsciiLetterOrDigit(text[end]) || text[end] == '_'))
                return false; // "Truex" is a different identifier
            _pos = end;
            return true;
        }

        private void Expect(char c)
        {
            if (!TryConsume(c))
                throw Malformed($"expected '{c}'", _pos);
        }

        private InvalidFileException Malformed(string what, int at)
        {
            const int MaxShown = 120;
            string shown = text.Length <= MaxShown ? text.TrimEnd() : text[..MaxShown] + "...";
            return new InvalidFileException(name, $"malformed header: {what} at offset {at} in {shown}");
        }
    }
}
