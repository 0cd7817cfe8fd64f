using System.Text;
using Sd.Loaders.Config;

namespace Sd.Loaders.Tests;

/// <summary>
/// The yaml beside an original-format ControlNet: heads and global pooling read from control_stage_config in files
/// laid out as lllyasviel's (comments, flow lists, block lists, other sections), and hostile files refused by line.
/// </summary>
public sealed class CldmYamlTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>An excerpt of control_v11p_sd15_canny.yaml's layout, with <paramref name="control"/> as control_stage_config's params.</summary>
    private static string Cldm(string control) => $"""
        model:
          target: cldm.cldm.ControlLDM
          params:
            linear_start: 0.00085
            first_stage_key: "jpg"
            use_ema: False

            control_stage_config:
              target: cldm.cldm.ControlNet
              params:
        {control}

            unet_config:
              target: cldm.cldm.ControlledUnetModel
              params:
                num_heads: 3
                global_average_pooling: True
            first_stage_config:
              params:
                ddconfig:
                  ch_mult:
                  - 1
                  - 2
                  attn_resolutions: []
                lossconfig:
                  target: torch.nn.Identity
        """;

    private const string Sd15 = """
                image_size: 32 # unused
                in_channels: 4
                attention_resolutions: [ 4, 2, 1 ]
                channel_mult: [ 1, 2, 4, 4 ]
                num_heads: 8
                use_spatial_transformer: True
                context_dim: 768
                legacy: False
        """;

    private CldmYaml Read(string text)
    {
        string path = _dir.File($"control-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, text);
        return CldmYaml.Read(path);
    }

    [Fact]
    public void Reads_heads_and_pooling_from_the_control_stage_only()
    {
        CldmYaml canny = Read(Cldm(Sd15));
        Assert.Equal((8, null, false), (canny.NumHeads, canny.NumHeadChannels, canny.GlobalAveragePooling));
        Assert.Equal([8, 8, 8, 8], canny.Heads([320, 640, 1280, 1280])!);

        CldmYaml shuffle = Read(Cldm(Sd15 + "\n        global_average_pooling: True"));
        Assert.True(shuffle.GlobalAveragePooling);

        // SD 2.x: 64 channels per head (num_heads -1 is cldm's "unset").
        CldmYaml sd21 = Read(Cldm("""
                    num_heads: -1
                    num_head_channels: 64 # need to fix for flash-attn
                    use_linear_in_transformer: True
                    context_dim: 1024
            """));
        Assert.Equal([5, 10, 20, 20], sd21.Heads([320, 640, 1280, 1280])!);
        Assert.False(sd21.GlobalAveragePooling);

        CldmYaml none = Read(Cldm("        in_channels: 4"));
        Assert.Null(none.Heads([320]));
    }

    /// <summary>
    /// What real files and editors add: a byte-order mark, CRLF line ends, a document marker, a tab before a comment,
    /// and lists of maps, whose keys (repeated from item to item) belong to no map read.
    /// </summary>
    [Fact]
    public void Byte_order_marks_crlf_documents_and_lists_of_maps_are_read()
    {
        string text = "\uFEFF---\n" + Cldm(Sd15 + "\n        global_average_pooling: True\t# shuffle") + """

                callbacks:
                  - name: a
                    num_heads: 1
                  - name: b
                    num_heads: 2
            """;
        CldmYaml yaml = Read(text.ReplaceLineEndings("\r\n"));
        Assert.Equal((8, true), (yaml.NumHeads, yaml.GlobalAveragePooling));
    }

    [Fact]
    public void Hostile_files_are_refused_naming_the_problem()
    {
        Assert.Contains("not a ControlNet's yaml", Refused("model:\n  params:\n    unet_config:\n      params:\n        num_heads: 8\n"));
        Assert.Contains("line 11 is indented with a tab", Refused(Cldm("\tnum_heads: 8")));
        Assert.Contains("line 11 ('just words') is not 'key: value'", Refused(Cldm("        just words")));
        Assert.Contains("model.params.control_stage_config.params.num_heads is given twice", Refused(Cldm(Sd15 + "\n        num_heads: 4")));
        Assert.Contains("num_heads is 'eight', expected a positive whole number or -1", Refused(Cldm("        num_heads: eight")));
        Assert.Contains("num_head_channels is '0'", Refused(Cldm("        num_head_channels: 0")));
        Assert.Contains("global_average_pooling is 'maybe', expected True or False", Refused(Cldm("        global_average_pooling: maybe")));
        Assert.Contains("line 11: a key of 300 characters at depth 5; expected at most 256 and 64", Refused(Cldm($"        {new string('k', 300)}: 1")));
        Assert.Contains("num_head_channels 48 does not divide block 0's 320 channels",
            Assert.Throws<InvalidFileException>(() => Read(Cldm("        num_head_channels: 48")).Heads([320])).Message);

        string binary = _dir.File("binary.yaml");
        File.WriteAllBytes(binary, [0x6d, 0x3a, 0xff, 0xfe, 0x0a]);
        Assert.Contains("not UTF-8 text", Assert.Throws<InvalidFileException>(() => CldmYaml.Read(binary)).Message);
        string huge = _dir.File("huge.yaml");
        File.WriteAllText(huge, new StringBuilder().Append('#', 2 * 1024 * 1024).ToString());
        Assert.Throws<InvalidFileException>(() => CldmYaml.Read(huge));
    }

    private string Refused(string text) => Assert.Throws<InvalidFileException>(() => Read(text)).Message;
}
