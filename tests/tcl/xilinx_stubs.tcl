# Stand-ins for the Vivado and Vitis HLS Tcl commands that flipflow's build
# scripts use, so that tclsh can run a generated script here without the tools.
# Each stand-in accepts only the options the vendor documents for that command
# (Vivado: UG835; Vitis HLS: UG1399) and, for set_property -dict, only the IP
# configuration names the IP documents (AXI DMA: PG021; Zynq-7000 PS: PG082).
# Any other command, option or property fails the run, naming it.
#   tclsh xilinx_stubs.tcl SCRIPT     prints "flipflow-tcl-check: ok N commands"

set ::calls 0

rename exit _exit
proc exit {{code 0}} { incr ::calls }  ;# the scripts end in `exit`; the check goes on

proc fail {msg} {
    puts stderr "flipflow-tcl-check: $msg"
    _exit 1
}

# Options that take no value; every other option takes the next word as its value.
set ::switches {-reset -tb -O -force -quiet -latest_file_version -all -norecurse -in_memory -clean -setup -top}

# Options documented for each command (only those flipflow may use are listed).
array set ::options {
    open_project     {-reset}
    set_top          {}
    add_files        {-cflags -csimflags -tb -norecurse -fileset}
    open_solution    {-reset -flow_target}
    set_part         {}
    create_clock     {-period -name}
    csim_design      {-O -argv -clean -ldflags -setup}
    csynth_design    {}
    cosim_design     {-argv -rtl -trace_level}
    export_design    {-format -rtl -vendor -library -version -description -ipname -display_name}
    create_project   {-force -part -in_memory}
    get_board_parts  {-quiet -latest_file_version -filter}
    set_property     {-dict -quiet}
    current_project  {}
    update_ip_catalog {}
    create_bd_design {}
    get_ipdefs       {-all -filter -quiet}
    create_bd_cell   {-type -vlnv -reference}
    apply_bd_automation {-rule -config}
    connect_bd_intf_net {}
    connect_bd_net   {}
    get_bd_intf_pins {-of_objects -filter -quiet}
    get_bd_intf_nets {-of_objects -filter -quiet}
    get_bd_pins      {-of_objects -filter -quiet}
    get_bd_cells     {-of_objects -filter -quiet}
    get_property     {-quiet}
    assign_bd_address {}
    validate_bd_design {}
    save_bd_design   {}
    get_files        {-of_objects -filter -quiet}
    generate_target  {}
    make_wrapper     {-files -top}
    current_fileset  {}
    update_compile_order {-fileset}
    launch_runs      {-to_step -jobs}
    wait_on_run      {}
    get_runs         {}
    read_verilog     {}
    create_bd_port   {-dir -type}
}

# CONFIG.<name> properties each IP documents, as set_property -dict may use them.
set ::ip_config {
    c_include_sg c_sg_length_width c_m_axi_mm2s_data_width c_m_axis_mm2s_tdata_width
    c_m_axi_s2mm_data_width c_s_axis_s2mm_tdata_width c_mm2s_burst_size c_s2mm_burst_size
    PCW_FPGA0_PERIPHERAL_FREQMHZ PCW_USE_S_AXI_HP0 PCW_USE_M_AXI_GP0
}
set ::plain_properties {board_part ip_repo_paths top}

proc check_options {name arguments} {
    for {set i 0} {$i < [llength $arguments]} {incr i} {
        set a [lindex $arguments $i]
        if {![regexp {^-[A-Za-z_]+$} $a]} { continue }
        if {[lsearch -exact $::options($name) $a] < 0} {
            fail "$name: option $a is not a documented option of $name"
        }
        if {[lsearch -exact $::switches $a] < 0} { incr i }  ;# skip the option's value
    }
}

proc check_properties {arguments} {
    set pairs {}
    if {[lindex $arguments 0] eq "-dict"} {
        set pairs [lindex $arguments 1]
    } else {
        set pairs [lrange $arguments 0 1]
    }
    foreach {key value} $pairs {
        if {[string match CONFIG.* $key]} {
            if {[lsearch -exact $::ip_config [string range $key 7 end]] < 0} {
                fail "set_property: $key is not a documented configuration parameter of the IPs used"
            }
        } elseif {[lsearch -exact $::plain_properties $key] < 0} {
            fail "set_property: property $key is not one flipflow's scripts are known to need"
        }
    }
}

# Plausible return values where the scripts use one.
proc result {name arguments} {
    switch -- $name {
        get_board_parts { return "tul.com.tw:pynq-z2:part0:1.0" }
        get_ipdefs      { return "xilinx.com:ip:[lindex [split [lindex $arguments end] :] 2]:1.0" }
        create_bd_cell  { return [lindex $arguments end] }
        get_property    {
            if {[lindex $arguments 0] eq "PROGRESS"} { return "100%" }
            return "axi_mem_intercon"
        }
        make_wrapper    { return "flipflow_bd_wrapper.v" }
        default         { return "stub_$name" }
    }
}

foreach name [array names ::options] {
    proc $name args [format {
        incr ::calls
        check_options %1$s $args
        if {"%1$s" eq "set_property"} { check_properties [lrange $args 0 end-1] }
        return [result %1$s $args]
    } $name]
}

# File system calls that would touch Vivado's outputs.
rename file _file
proc file {sub args} {
    switch -- $sub {
        copy   { return }
        exists { return 1 }
        default { return [_file $sub {*}$args] }
    }
}
proc glob args { return [list stub_output] }

proc unknown {args} { fail "unknown command [lindex $args 0] (not a Vivado/Vitis HLS command flipflow's stand-ins know)" }

if {[catch {source [lindex $argv 0]} message]} {
    fail "[lindex $argv 0]: $message"
}
puts "flipflow-tcl-check: ok $::calls commands"
_exit 0
