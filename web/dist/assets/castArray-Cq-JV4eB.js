import{af as a}from"./admin-BSc1H_F1.js";function e(){if(!arguments.length)return[];var r=arguments[0];return a(r)?r:[r]}export{e as c};
