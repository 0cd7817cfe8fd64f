namespace Sd.Loaders.Webp;

/// <summary>
/// Decodes a lossless WebP image stream ("VP8L" chunk, or a lossy image's compressed alpha) to ARGB pixels: the
/// transforms, the colour cache, the prefix-code groups (one per tile of the entropy image), literals, backward
/// references and cache hits, then the inverse transforms. Reference: the WebP lossless bitstream specification and
/// libwebp's dec/vp8l_dec.c (what it accepts and refuses).
/// </summary>
internal sealed class Vp8lDecoder
{
    private const int Literals = 256, LengthCodes = 24, DistanceCodes = 40, MaxCacheBits = 11;

    private static ReadOnlySpan<byte> CodeLengthOrder => [17, 18, 0, 1, 2, 3, 4, 5, 16, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

    // Distance codes 1-120 name nearby pixels: yoffset in the high nibble, 8 - xoffset in the low.
    private static ReadOnlySpan<byte> DistanceMap =>
    [
        0x18, 0x07, 0x17, 0x19, 0x28, 0x06, 0x27, 0x29, 0x16, 0x1a, 0x26, 0x2a, 0x38, 0x05, 0x37, 0x39, 0x15, 0x1b,
        0x36, 0x3a, 0x25, 0x2b, 0x48, 0x04, 0x47, 0x49, 0x14, 0x1c, 0x35, 0x3b, 0x46, 0x4a, 0x24, 0x2c, 0x58, 0x45,
        0x4b, 0x34, 0x3c, 0x03, 0x57, 0x59, 0x13, 0x1d, 0x56, 0x5a, 0x23, 0x2d, 0x44, 0x4c, 0x55, 0x5b, 0x33, 0x3d,
        0x68, 0x02, 0x67, 0x69, 0x12, 0x1e, 0x66, 0x6a, 0x22, 0x2e, 0x54, 0x5c, 0x43, 0x4d, 0x65, 0x6b, 0x32, 0x3e,
        0x78, 0x01, 0x77, 0x79, 0x53, 0x5d, 0x11, 0x1f, 0x64, 0x6c, 0x42, 0x4e, 0x76, 0x7a, 0x21, 0x2f, 0x75, 0x7b,
        0x31, 0x3f, 0x63, 0x6d, 0x52, 0x5e, 0x00, 0x74, 0x7c, 0x41, 0x4f, 0x10, 0x20, 0x62, 0x6e, 0x30, 0x73, 0x7d,
        0x51, 0x5f, 0x40, 0x72, 0x7e, 0x61, 0x6f, 0x50, 0x71, 0x7f, 0x60, 0x70,
    ];

    private readonly Vp8lBitReader _br;
    private readonly string _name;
    private readonly List<Vp8lTransform> _transforms = [];

    private Vp8lDecoder(Vp8lBitReader br, string name)
    {
        _br = br;
        _name = name;
    }

    /// <summary>The "VP8L" chunk's picture, <paramref name="width"/> x <paramref name="height"/> as its header
    /// (already checked by the container) says.</summary>
    public static uint[] Decode(byte[] data, WebpChunk chunk, int width, int height, string name)
    {
        var br = new Vp8lBitReader(data, chunk.Start, chunk.Length);
        br.Skip(8 + 14 + 14 + 1 + 3); // signature, size, alpha flag and version, read by the container
        return new Vp8lDecoder(br, name).DecodeMain(width, height);
    }

    /// <summary>A headerless stream of <paramref name="width"/> x <paramref name="height"/> pixels (a compressed
    /// alpha plane, in the green channel).</summary>
    public static uint[] DecodeHeaderless(byte[] data, int start, int length, int width, int height, string name) =>
        new Vp8lDecoder(new Vp8lBitReader(data, start, length), name).DecodeMain(width, height);

    private uint[] DecodeMain(int width, int height)
    {
        int codedWidth = width;
        while (_br.Read(1) == 1)
            codedWidth = ReadTransform(codedWidth, height);
        uint[] pixels = DecodeStream(codedWidth, height, entropyImage: true);
        for (int i = _transforms.Count - 1; i >= 0; i--)
            pixels = _transforms[i].Invert(pixels, height);
        return pixels;
    }

    /// <summary>Reads one transform (each kind at most once) and returns the width the pixels are coded at after it.</summary>
    private int ReadTransform(int width, int height)
    {
        int kind = _br.Read(2);
        foreach (Vp8lTransform seen in _transforms)
        {
            if (seen.Kind == kind)
                throw Invalid($"transform {kind} appears twice");
        }
        switch (kind)
        {
            case Vp8lTransform.Predictor or Vp8lTransform.CrossColor:
            {
                int bits = _br.Read(3) + 2;
                uint[] tiles = DecodeStream(TileCount(width, bits), TileCount(height, bits), entropyImage: false);
                _transforms.Add(new Vp8lTransform(kind, width, bits, tiles));
                return width;
            }
            case Vp8lTransform.ColorIndexing:
            {
                int colors = _br.Read(8) + 1;
                int bits = colors > 16 ? 0 : colors > 4 ? 1 : colors > 2 ? 2 : 3;
                uint[] palette = DecodeStream(colors, 1, entropyImage: false);
                _transforms.Add(new Vp8lTransform(kind, width, bits, Vp8lTransform.ExpandPalette(palette, bits)));
                return TileCount(width, bits);
            }
            default:
                _transforms.Add(new Vp8lTransform(kind, width, 0, []));
                return width;
        }
    }

    /// <summary>An image stream's colour cache, prefix codes and pixels (ARGB). Only the main image may have an
    /// entropy image choosing among several prefix-code groups.</summary>
    private uint[] DecodeStream(int width, int height, bool entropyImage)
    {
        int cacheBits = 0;
        if (_br.Read(1) == 1)
        {
            cacheBits = _br.Read(4);
            if (cacheBits is < 1 or > MaxCacheBits)
                throw Invalid($"colour cache of {cacheBits} bits (1 to {MaxCacheBits} allowed)");
        }
        int groupBits = 0;
        uint[]? groupImage = null;
        int groupCount = 1;
        if (entropyImage && _br.Read(1) == 1)
        {
            groupBits = _br.Read(3) + 2;
            groupImage = DecodeStream(TileCount(width, groupBits), TileCount(height, groupBits), entropyImage: false);
            for (int i = 0; i < groupImage.Length; i++)
            {
                groupImage[i] = (groupImage[i] >> 8) & 0xffff;
                groupCount = Math.Max(groupCount, (int)groupImage[i] + 1);
            }
        }
        CheckNotPastEnd();
        // Every group's codes are read and checked, but only the groups some tile uses are kept (a small file can
        // name 65536 groups).
        var used = new bool[groupCount];
        if (groupImage == null)
            used[0] = true;
        else
            foreach (uint g in groupImage)
                used[g] = true;
        var groups = new Vp8lPrefixCode[groupCount][];
        int greenAlphabet = Literals + LengthCodes + (cacheBits > 0 ? 1 << cacheBits : 0);
        for (int g = 0; g < groupCount; g++)
        {
            Vp8lPrefixCode[] codes =
            [
                ReadCode(greenAlphabet), ReadCode(Literals), ReadCode(Literals), ReadCode(Literals), ReadCode(DistanceCodes),
            ];
            if (used[g])
                groups[g] = codes;
        }
        var pixels = new uint[(long)width * height];
        var image = new Vp8lEntropyImage(groups, groupImage, groupBits, TileCount(width, groupBits));
        DecodePixels(pixels, width, image, cacheBits);
        return pixels;
    }

    private void DecodePixels(uint[] pixels, int width, Vp8lEntropyImage image, int cacheBits)
    {
        uint[]? cache = cacheBits > 0 ? new uint[1 << cacheBits] : null;
        int cacheShift = 32 - cacheBits;
        int cached = 0; // pixels before this are in the cache: each goes in, in order, before the next lookup
        int at = 0;
        while (at < pixels.Length)
        {
            int x = at % width, y = at / width;
            Vp8lPrefixCode[] codes = image.Group(x, y);
            int green = codes[0].Read(_br);
            if (green < Literals)
            {
                int red = codes[1].Read(_br), blue = codes[2].Read(_br), alpha = codes[3].Read(_br);
                pixels[at++] = (uint)(alpha << 24 | red << 16 | green << 8 | blue);
            }
            else if (green < Literals + LengthCodes)
            {
                int length = PrefixValue(green - Literals);
                int distance = PlaneDistance(width, PrefixValue(codes[4].Read(_br)));
                CheckNotPastEnd();
                if (distance > at || length > pixels.Length - at)
                    throw Invalid($"a backward reference of {length} pixels at distance {distance} leaves the image at pixel {at}");
                for (int i = 0; i < length; i++, at++)
                    pixels[at] = pixels[at - distance];
            }
            else
            {
                // A cache hit (the code's alphabet has cache entries only when there is a cache).
                for (; cached < at; cached++)
                    cache![(pixels[cached] * 0x1e35a7bdu) >> cacheShift] = pixels[cached];
                pixels[at++] = cache![green - Literals - LengthCodes];
            }
            CheckNotPastEnd();
        }
    }

    /// <summary>A length or distance prefix symbol's value: small ones as they are, larger ones with extra bits.</summary>
    private int PrefixValue(int symbol)
    {
        if (symbol < 4)
            return symbol + 1;
        int extraBits = (symbol - 2) >> 1;
        int offset = (2 + (symbol & 1)) << extraBits;
        return offset + _br.Read(extraBits) + 1;
    }

    private static int PlaneDistance(int width, int code)
    {
        if (code > DistanceMap.Length)
            return code - DistanceMap.Length;
        int map = DistanceMap[code - 1];
        int distance = (map >> 4) * width + 8 - (map & 0xf);
        return Math.Max(distance, 1); // a very narrow image can make it less than 1
    }

    /// <summary>Reads one prefix code over an alphabet of <paramref name="alphabet"/> symbols.</summary>
    private Vp8lPrefixCode ReadCode(int alphabet)
    {
        var lengths = new int[alphabet];
        if (_br.Read(1) == 1)
        {
            // One or two symbols, each of length 1 (symbols outside the alphabet are dropped, as libwebp drops them).
            int symbols = _br.Read(1) + 1;
            int first = _br.Read(_br.Read(1) == 0 ? 1 : 8);
            if (first < alphabet)
                lengths[first] = 1;
            if (symbols == 2)
            {
                int second = _br.Read(8);
                if (second < alphabet)
                    lengths[second] = 1;
            }
        }
        else
        {
            ReadCodeLengths(lengths);
        }
        CheckNotPastEnd();
        return Vp8lPrefixCode.Build(lengths) ?? throw Invalid($"invalid prefix code over {alphabet} symbols");
    }

    /// <summary>Code lengths coded with a code-length code and run lengths, as RFC 1951 codes them (with WebP's order and limits).</summary>
    private void ReadCodeLengths(int[] lengths)
    {
        var lengthLengths = new int[CodeLengthOrder.Length];
        int count = _br.Read(4) + 4;
        for (int i = 0; i < count; i++)
            lengthLengths[CodeLengthOrder[i]] = _br.Read(3);
        Vp8lPrefixCode lengthCode = Vp8lPrefixCode.Build(lengthLengths) ?? throw Invalid("invalid code-length code");
        int maxSymbols = lengths.Length;
        if (_br.Read(1) == 1)
        {
            maxSymbols = 2 + _br.Read(2 + 2 * _br.Read(3));
            if (maxSymbols > lengths.Length)
                throw Invalid($"{maxSymbols} code lengths for an alphabet of {lengths.Length}");
        }
        int previous = 8;
        for (int symbol = 0; symbol < lengths.Length && maxSymbols-- > 0;)
        {
            int length = lengthCode.Read(_br);
            if (length < 16)
            {
                lengths[symbol++] = length;
                if (length != 0)
                    previous = length;
                continue;
            }
            int repeat = length switch { 16 => 3 + _br.Read(2), 17 => 3 + _br.Read(3), _ => 11 + _br.Read(7) };
            if (symbol + repeat > lengths.Length)
                throw Invalid($"code lengths run past the alphabet of {lengths.Length}");
            lengths.AsSpan(symbol, repeat).Fill(length == 16 ? previous : 0);
            symbol += repeat;
        }
    }

    private static int TileCount(int size, int bits) => (size + (1 << bits) - 1) >> bits;

    private void CheckNotPastEnd()
    {
        if (_br.PastEnd)
            throw Invalid("truncated: the lossless image data ends early");
    }

    private InvalidFileException Invalid(string problem) => new(_name, $"VP8L: {problem}");
}

/// <summary>The prefix-code groups of an image stream and, for the main image, which group each tile uses.</summary>
internal sealed class Vp8lEntropyImage(Vp8lPrefixCode[][] groups, uint[]? tiles, int bits, int tilesWide)
{
    public Vp8lPrefixCode[] Group(int x, int y) => tiles == null ? groups[0] : groups[tiles[(y >> bits) * tilesWide + (x >> bits)]];
}
