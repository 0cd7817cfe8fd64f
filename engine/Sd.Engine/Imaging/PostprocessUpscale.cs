using System.Globalization;
using Sd.Engine.Upscaling;

namespace Sd.Engine.Imaging;

/// <summary>
/// AUTOMATIC1111's Extras "Upscale" (scripts/postprocessing_upscale.py, ScriptPostprocessingUpscale) on an 8-bit RGB
/// picture: "Scale by" <see cref="Scale"/> (limited by <see cref="MaxSideLength"/> when set), or "Scale to"
/// <see cref="Width"/> x <see cref="Height"/> (by the larger of the two ratios, then centred on a black canvas of
/// that size when <see cref="Crop"/>), through Upscaler.upscale (<see cref="ImageUpscaling.UpscaleBy"/>), optionally
/// blended with a second upscaler's result (Pillow's Image.blend). The result's sides are A1111's: floored to
/// multiples of 8 unless cropped.
/// </summary>
public sealed class PostprocessUpscale
{
    /// <summary>"Upscaler 1".</summary>
    public required Upscaler Upscaler { get; init; }

    /// <summary>"Scale by": the factor, when <see cref="Width"/> and <see cref="Height"/> are 0 (A1111's default 4).</summary>
    public double Scale { get; init; } = 4;

    /// <summary>"Max side length": with "Scale by", the larger side is brought down to it (no crop); 0 is no limit.</summary>
    public int MaxSideLength { get; init; }

    /// <summary>"Scale to": the size (both above 0), or 0 and 0 to scale by <see cref="Scale"/>.</summary>
    public int Width { get; init; }

    public int Height { get; init; }

    /// <summary>"Crop to fit" (with "Scale to"): the result centred on a black canvas of exactly that size.</summary>
    public bool Crop { get; init; } = true;

    /// <summary>"Upscaler 2", blended in by <see cref="Upscaler2Visibility"/> when that is above 0.</summary>
    public Upscaler? Upscaler2 { get; init; }

    /// <summary>"Upscaler 2 visibility", 0 to 1: the second result's weight in the blend.</summary>
    public double Upscaler2Visibility { get; init; }

    /// <summary>
    /// Upscales an RGB picture [height, width, 3]. The result carries A1111's infotext entries in its order
    /// ("Postprocess upscale by", "Postprocess upscaler", ...), values unquoted.
    /// </summary>
    /// <exception cref="ArgumentException">A setting is out of range, or the picture does not match its size, or
    /// the result would be too large (see <see cref="ImageUpscaling.UpscaleBy"/>).</exception>
    public UpscaledPicture Run(byte[] rgb, int height, int width, CancellationToken cancellation = default)
    {
        Validate();
        var info = new List<KeyValuePair<string, string>>();
        (byte[] picture, int h, int w) = UpscaleWith(Upscaler, rgb, height, width, info, cancellation);
        Set(info, "Postprocess upscaler", Upscaler.Name);
        if (Upscaler2 is { } second && Upscaler2Visibility > 0)
        {
            (byte[] other, _, _) = UpscaleWith(second, rgb, height, width, info, cancellation);
            Blend(picture, other, (float)Upscaler2Visibility);
            Set(info, "Postprocess upscaler 2", second.Name);
        }
        return new UpscaledPicture(picture, h, w, info);
    }

    private void Validate()
    {
        if (Width < 0 || Height < 0 || (Width == 0) != (Height == 0))
        {
            throw new ArgumentException($"\"Scale to\" needs a width and a height above 0 (or both 0 to scale by {Scale.ToString(CultureInfo.InvariantCulture)}), got {Width}x{Height}");
        }
        if (!(Scale > 0) || double.IsInfinity(Scale))
        {
            throw new ArgumentOutOfRangeException(nameof(Scale), Scale, "the scale must be a finite number above 0");
        }
        ArgumentOutOfRangeException.ThrowIfNegative(MaxSideLength);
        if (!(Upscaler2Visibility >= 0 && Upscaler2Visibility <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(Upscaler2Visibility), Upscaler2Visibility, "the second upscaler's visibility must be 0 to 1");
        }
    }

    /// <summary>ScriptPostprocessingUpscale.upscale: one upscaler's result, recording its size settings in <paramref name="info"/>.</summary>
    private (byte[] Picture, int Height, int Width) UpscaleWith(Upscaler upscaler, byte[] rgb, int height, int width, List<KeyValuePair<string, string>> info, CancellationToken cancellation)
    {
        double scale = Scale; // the picture is checked by UpscaleBy before any work
        (int toW, int toH) = (Width, Height);
        bool scaleTo = toW > 0, crop = Crop;
        if (scaleTo)
        {
            scale = Math.Max(toW / (double)width, toH / (double)height);
            Set(info, "Postprocess upscale to", $"{toW}x{toH}");
        }
        else
        {
            Set(info, "Postprocess upscale by", Scale.ToString(CultureInfo.InvariantCulture));
            if (MaxSideLength != 0 && Math.Max(width, height) * scale > MaxSideLength)
            {
                (scaleTo, crop) = (true, false);
                (toW, toH) = LimitSize(width * scale, height * scale, MaxSideLength);
                scale = Math.Max(toW / (double)width, toH / (double)height);
                Set(info, "Max side length", MaxSideLength.ToString(CultureInfo.InvariantCulture));
            }
        }
        (byte[] picture, int h, int w) = ImageUpscaling.UpscaleBy(rgb, height, width, scale, upscaler, cancellation);
        if (scaleTo && crop)
        {
            // Image.new("RGB", (W, H)).paste(image, box=(W // 2 - w // 2, H // 2 - h // 2)): a crop of the result
            // at the negated origin, black where it does not reach.
            picture = TileGrid.Crop(picture, h, w, w / 2 - toW / 2, h / 2 - toH / 2, toW, toH);
            (h, w) = (toH, toW);
            Set(info, "Postprocess crop to", $"{toW}x{toH}");
        }
        return (picture, h, w);
    }

    /// <summary>limit_size_by_one_dimention: the larger side brought down to the limit, the other in proportion (Python floats).</summary>
    private static (int Width, int Height) LimitSize(double w, double h, int limit)
    {
        if (h > w && h > limit)
        {
            (w, h) = (FloorDivide(limit * w, h), limit);
        }
        else if (w > limit)
        {
            (w, h) = (limit, FloorDivide(limit * h, w));
        }
        return ((int)w, (int)h);
    }

    /// <summary>Python's float floor division (floatobject.c's _float_div_mod) for positive operands.</summary>
    private static double FloorDivide(double x, double y)
    {
        double div = (x - x % y) / y; // C# % on doubles is C's fmod
        if (div == 0)
        {
            return 0;
        }
        double floor = Math.Floor(div);
        return div - floor > 0.5 ? floor + 1 : floor;
    }

    /// <summary>
    /// Pillow's Image.blend for 0 &lt;= alpha &lt;= 1 (Blend.c): each byte a + alpha (b - a) in float32, truncated,
    /// into <paramref name="a"/>.
    /// </summary>
    private static void Blend(byte[] a, byte[] b, float alpha)
    {
        for (int i = 0; i < a.Length; i++)
        {
            a[i] = (byte)(a[i] + alpha * (b[i] - a[i]));
        }
    }

    /// <summary>pp.info[key] = value: a key already there keeps its place.</summary>
    private static void Set(List<KeyValuePair<string, string>> info, string key, string value)
    {
        for (int i = 0; i < info.Count; i++)
        {
            if (info[i].Key == key)
            {
                info[i] = new(key, value);
                return;
            }
        }
        info.Add(new(key, value));
    }
}

/// <summary>An upscaled RGB picture [Height, Width, 3] and the infotext entries that say how it was made.</summary>
public sealed record UpscaledPicture(byte[] Picture, int Height, int Width, IReadOnlyList<KeyValuePair<string, string>> Info);
